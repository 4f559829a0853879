"""Run a bundle on a camera, video file or RTSP stream and use its outputs in your own loop.

    python samples/camera_stream.py BUNDLE [SOURCE] [--record out.mp4]

SOURCE is what `simokit run --source` takes: 0 (camera index), /dev/video0, video.mp4, rtsp://...,
gst:<pipeline>, csi://0 or a folder of images (default 0). Needs numpy, onnxruntime and OpenCV, not torch.
"""

from __future__ import annotations

import argparse

from simokit.runtime import Stream, load
from simokit.runtime.sinks import make_sinks


def main() -> None:
    """Print what the robot sees straight ahead, frame by frame."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle")
    parser.add_argument("source", nargs="?", default="0")
    parser.add_argument("--record", help="also write the overlay video here")
    parser.add_argument("--max-frames", type=int, default=100)
    args = parser.parse_args()

    engine = load(args.bundle)  # ONNX Runtime; CUDA when onnxruntime-gpu is installed
    classes = engine.meta.classes
    with Stream(engine, args.source, max_frames=args.max_frames) as stream:
        stream.sinks += make_sinks(engine.meta, stream.stats, record=args.record)
        for frame, outputs in stream:  # numpy arrays at the frame's resolution
            h, w = frame.image.shape[:2]
            label = int(outputs["seg"].argmax(0)[h // 2, w // 2])  # (K, H, W) logits -> class id
            metres = float(outputs["depth"][0, h // 2, w // 2])  # (1, H, W) depth in metres
            name = classes[label] if label < len(classes) else str(label)
            print(f"frame {frame.index}: {name} at {metres:.2f} m straight ahead")
    print(stream.stats.summary())


if __name__ == "__main__":
    main()

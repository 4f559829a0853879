"""`simokit run`: a bundle on a camera, video file, network stream or image folder."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from simokit.cli.groups import add_bundle, add_quiet, add_threads
from simokit.runtime.capabilities import CHOICES

HELP = "run a bundle on a camera, video, RTSP/GStreamer stream or image folder"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """run's flags: the source and how to open it, the backend, what to write, reconnects."""
    add_bundle(p)
    p.add_argument(
        "--source",
        required=True,
        help="0 (camera index), /dev/video0, video.mp4, rtsp://..., gst:<pipeline>, csi://0, a folder "
        "or a ROS 2 bag (robot.mcap)",
    )
    p.add_argument("--topic", help="image topic of a .mcap bag source (Image or CompressedImage)")
    p.add_argument("--backend", choices=CHOICES, default="auto", help="engine backend (default: %(default)s)")
    add_threads(p)
    p.add_argument(
        "--spin",
        action="store_true",
        help="let ONNX Runtime's idle threads busy-wait between frames (default: they sleep, which gives "
        "capture, decoding and display the cores: 0.82 -> 0.99 of the engine's frame rate from a 720p "
        "file on 2 cores, same engine speed)",
    )
    p.add_argument("--width", type=int, default=0, help="camera width to request (default: driver's)")
    p.add_argument("--height", type=int, default=0, help="camera height to request (default: driver's)")
    p.add_argument("--fps", type=float, default=0.0, help="camera frame rate to request (default: driver's)")
    p.add_argument(
        "--record",
        help="write the tiled overlay video here (.mp4, .avi, .mkv, .mov), or the outputs as a ROS 2 "
        "bag (.mcap)",
    )
    p.add_argument(
        "--save",
        help="folder for per-frame outputs, named after the input file (folders) or the frame index: "
        "<name>.png (picture), <name>_seg.png (uint8 labels), <name>_depth.png (16-bit millimetres), "
        "<name>_normal.npy (float32 H x W x 3)",
    )
    p.add_argument(
        "--save-raw", action="store_true", help="with --save: also every output as the graph gave it (.npy)"
    )
    p.add_argument("--headless", action="store_true", help="no window (robots, servers, CI)")
    p.add_argument("--max-frames", type=int, default=0, help="stop after N frames (default: until the end)")
    p.add_argument(
        "--reconnect-attempts",
        type=int,
        default=10,
        help="re-open attempts (back-off 0.5 s doubling to 8 s) when a live source drops; -1 = forever",
    )
    p.add_argument("--verify", action="store_true", help="check every bundle file's SHA-256 before starting")
    add_quiet(p, help="no periodic statistics, only the summary")


def handle(args: argparse.Namespace) -> int:
    """Run a bundle on a camera, video file, network stream or image folder; print statistics at the end."""
    import logging
    import os

    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # our one-line errors replace FFmpeg's chatter
    from simokit.runtime import load
    from simokit.runtime.sinks import make_sinks
    from simokit.runtime.sources import open_source, require_cv2
    from simokit.runtime.stream import Stream
    from simokit.runtime.stream_types import Reconnect

    cv2 = require_cv2("simokit run")
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    if not logging.getLogger().handlers:
        level = logging.WARNING if args.quiet else logging.INFO
        logging.basicConfig(level=level, format="simokit run: %(message)s")
    if args.verify:
        from simokit.runtime.manifest import verify_folder

        print(f"files: {verify_folder(Path(args.bundle))} verified (size and SHA-256)", flush=True)
    source = open_source(args.source, args.width, args.height, args.fps, args.topic)
    engine = load(Path(args.bundle), backend=args.backend, threads=args.threads, spin=args.spin)
    reconnect = Reconnect(attempts=args.reconnect_attempts)
    stream = Stream(engine, source, max_frames=args.max_frames, reconnect=reconnect)
    stream.sinks += make_sinks(
        engine.meta,
        stream.stats,
        window=not args.headless,
        record=args.record,
        save=args.save,
        save_raw=args.save_raw,
        fps=lambda: source.fps or args.fps or 30.0,
        label=_domain_label(engine),
    )
    print(f"{engine.describe()} on {source.uri}", flush=True)
    stats = stream.run()
    print(stats.summary())
    if hasattr(engine, "last_domains"):  # a routed bundle: which domain engine ran how many frames
        print(engine.describe())
    if args.record and Path(args.record).exists():
        print(f"recording: {args.record}")
    return 0


def _domain_label(engine: object) -> Callable[[], str] | None:
    """For a routed engine, the overlay names the domain whose engine ran the latest frame."""
    if not hasattr(engine, "last_domains"):
        return None
    return lambda: "domain " + (engine.last_domains[-1] if engine.last_domains else "-")

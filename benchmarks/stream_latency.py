"""Stream throughput and latency on a bundle, against the engine's own batch-1 throughput.

Writes a video of embedded scenes (OpenCV mp4v) to a temp dir, then measures on one engine:
(a) engine: `engine.infer(frame)` in a loop over frames already decoded in memory (pre- and
    post-processing included, nothing else), frames per second;
(b) file stream: `Stream(engine, video.mp4)` headless (decode, inference and delivery in a pipeline),
    frames per second and the ratio (b)/(a); the goal is >= 0.9; also the same stream over the
    decoded frames in memory, which shows the pipeline's own overhead without the decoder's CPU;
(c) live-rate stream: the same frames from a paced live source at --live-fps (a camera stand-in,
    newest-frame-only), latency p50/p99 from capture to sink against 2 frame intervals + inference.

    python benchmarks/stream_latency.py [--bundle simokit-demo/bundle] [--size 320x240]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from simokit.data.scenes import render_scene
from simokit.runtime import Source, Stream, load
from simokit.runtime.sinks import make_sinks


class MemoryFrames(Source):
    """A file-like source over frames already in memory: the stream without decoding."""

    live = False

    def __init__(self, frames: np.ndarray) -> None:
        self.uri, self.frames, self._next = "memory://", frames, 0

    def open(self) -> None:
        """Rewind."""
        self._next = 0

    def read(self) -> np.ndarray | None:
        """Next frame, None after the last."""
        self._next += 1
        return self.frames[self._next - 1] if self._next <= len(self.frames) else None

    def close(self) -> None:
        """Nothing to release."""


class PacedFrames(Source):
    """A live source serving in-memory frames at a fixed rate, like a camera (never ends)."""

    live = True

    def __init__(self, frames: np.ndarray, fps: float) -> None:
        self.uri, self.frames, self.fps = f"paced://{fps:g}fps", frames, fps
        self._next = 0

    def open(self) -> None:
        """Start the clock."""
        self._start, self._next = time.perf_counter(), 0

    def read(self) -> np.ndarray:
        """Wait for the next tick, then return the next frame (looping)."""
        tick = self._start + self._next / self.fps
        time.sleep(max(0.0, tick - time.perf_counter()))
        frame = self.frames[self._next % len(self.frames)]
        self._next += 1
        return frame

    def close(self) -> None:
        """Nothing to release."""


def write_video(path: Path, n: int, width: int, height: int, fps: float) -> np.ndarray:
    """Render `n` scenes at width x height, write them as mp4v, return the decoded frames (BGR)."""
    scenes = [render_scene(i % 24, ("indoor", "outdoor")[i % 2], (height, width))["image"] for i in range(24)]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for i in range(n):
        writer.write(np.ascontiguousarray(scenes[i % 24][..., ::-1]))
    writer.release()
    cap, frames = cv2.VideoCapture(str(path)), []
    while (got := cap.read())[0]:
        frames.append(got[1])
    return np.stack(frames)


def engine_fps(engine, frames: np.ndarray, warmup: int = 20) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Batch-1 frames/s and mean ms of engine.infer over in-memory frames."""
    for f in frames[:warmup]:
        engine.infer(f)
    start = time.perf_counter()
    for f in frames:
        engine.infer(f)
    seconds = time.perf_counter() - start
    return len(frames) / seconds, 1000 * seconds / len(frames)


def main() -> None:
    """Measure and print a table (and JSON with --json)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--bundle",
        default="simokit-demo/bundle",
        help="bundle to measure (default: %(default)s, the one `simokit demo` writes)",
    )
    p.add_argument("--size", default="320x240", help="video width x height (default: %(default)s)")
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--live-fps", type=float, default=30.0)
    p.add_argument("--live-frames", type=int, default=300)
    p.add_argument("--repeat", type=int, default=3, help="alternating runs of (a) and (b); best of each")
    p.add_argument("--threads", type=int, help="ONNX Runtime intra-op threads (default: all cores)")
    p.add_argument("--record", action="store_true", help="also time the file stream with --record")
    p.add_argument("--json", help="write results here")
    args = p.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    engine = load(args.bundle, threads=args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "scenes.mp4"
        frames = write_video(video, args.frames, width, height, args.live_fps)
        # Alternate the two measurements and keep each one's best run: other load on the machine then
        # hits both alike instead of whichever happened to run during a busy moment.
        engine_rates, stream_rates, memory_rates = [], [], []
        for _ in range(args.repeat):
            engine_rates.append(engine_fps(engine, frames)[0])
            file_stats = Stream(engine, str(video), log_every=0).run()
            stream_rates.append(file_stats.delivered / file_stats.elapsed())
            mem = Stream(engine, MemoryFrames(frames), log_every=0).run()
            memory_rates.append(mem.delivered / mem.elapsed())
        engine_rate = max(engine_rates)
        res = {
            "device": engine.describe(),
            "size": args.size,
            "engine_fps_runs": engine_rates,
            "file_stream_fps_runs": stream_rates,
            "engine_fps": engine_rate,
            "file_stream_fps": max(stream_rates),
            "memory_stream_fps": max(memory_rates),
            "file_frames": file_stats.delivered,
        }
        res["ratio"] = res["file_stream_fps"] / engine_rate
        if args.record:
            stream = Stream(engine, str(video), log_every=0)
            stream.sinks += make_sinks(engine.meta, stream.stats, record=Path(tmp) / "rec.mp4")
            rec = stream.run()
            res["record_stream_fps"] = rec.delivered / rec.elapsed()
    live = Stream(engine, PacedFrames(frames, args.live_fps), max_frames=args.live_frames, log_every=0).run()
    interval_ms = 1000 / args.live_fps
    res |= {
        "live_fps": args.live_fps,
        "live_delivered": live.delivered,
        "live_dropped": live.dropped,
        "live_p50_ms": live.latency_ms(50),
        "live_p99_ms": live.latency_ms(99),
        "live_infer_ms": live.infer_ms(),
        "live_bound_ms": 2 * interval_ms + live.infer_ms(),
    }
    print(f"{res['device']}, frames {args.size}")
    runs = ", ".join(f"{a:.0f}/{b:.0f}" for a, b in zip(engine_rates, stream_rates, strict=True))
    print(f"engine batch-1:   {engine_rate:7.1f} fps ({1000 / engine_rate:.2f} ms/frame incl. pre/post)")
    print(f"file stream:      {res['file_stream_fps']:7.1f} fps  ratio {res['ratio']:.3f} (goal >= 0.9)")
    print(f"  runs (engine/stream fps): {runs}")
    print(f"memory stream:    {res['memory_stream_fps']:7.1f} fps  (no decoding: the pipeline's own cost)")
    if "record_stream_fps" in res:
        print(f"  with --record:  {res['record_stream_fps']:7.1f} fps")
    print(
        f"live {args.live_fps:g} fps:     p50 {res['live_p50_ms']:.1f} ms, p99 {res['live_p99_ms']:.1f} ms "
        f"(bound 2 x {interval_ms:.1f} + {res['live_infer_ms']:.1f} = {res['live_bound_ms']:.1f} ms), "
        f"{live.dropped} dropped of {live.captured}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()

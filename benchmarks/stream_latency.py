"""Stream throughput and latency on a bundle, against the engine's own batch-1 throughput.

Writes a video of embedded scenes (OpenCV mp4v) to a temp dir, then measures on one engine:
(a) engine: `engine.infer(frame)` in a loop over frames already decoded in memory (pre- and
    post-processing included, nothing else), frames per second;
(b) file stream: `Stream(engine, video.mp4)` headless (decode, inference and delivery in a pipeline),
    frames per second and the ratio (b)/(a); the goal is >= 0.95; also the same stream over the
    decoded frames in memory, which shows the pipeline's own overhead without the decoder's CPU;
(c) live-rate stream: the same frames from a paced live source at --live-fps (a camera stand-in,
    newest-frame-only), latency p50/p99 from capture to sink against 2 frame intervals + inference.

(a) and (b) alternate --repeat times; each run's ratio, their median and spread are reported, with
the process CPU time per frame of each (the decoder's share shows as (b) minus (a)), the video
decoded alone, and the load average before and after (the machine may be shared).
--build-frame-io measures a demo-like frame-IO bundle built here (vitmicro14 at 112 px, random
weights, seg labels, depth, normals; needs torch) instead of --bundle. The engine is opened as
`simokit run` opens it, with ONNX Runtime's idle threads sleeping between frames; --spin lets them
busy-wait instead (faster alone, but they take the cores from the decoder).

    python benchmarks/stream_latency.py [--bundle simokit-demo/bundle] [--size 320x240]
    python benchmarks/stream_latency.py --build-frame-io --size 1280x720 --threads 2 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import statistics
import sys
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


def cpu_seconds() -> float:
    """User + system CPU time of this process (every thread), seconds."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(fn) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(wall, CPU) seconds of fn()."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    fn()
    return time.perf_counter() - wall, cpu_seconds() - cpu


def engine_run(engine, frames: np.ndarray) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Batch-1 frames/s of engine.infer over in-memory frames, and CPU ms per frame."""

    def loop() -> None:
        for f in frames:  # each result dropped before the next, as a stream's consumer would
            engine.infer(f)

    wall, cpu = timed(loop)
    return len(frames) / wall, 1000 * cpu / len(frames)


def stream_run(engine, source) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Frames/s of a headless Stream over `source`, and CPU ms per delivered frame."""
    stats: list = []
    _, cpu = timed(lambda: stats.append(Stream(engine, source, log_every=0).run()))
    return stats[0].delivered / stats[0].elapsed(), 1000 * cpu / stats[0].delivered


def decode_alone(video: Path) -> dict[str, float]:
    """The video decoded to the end with OpenCV, nothing else: ms per frame, wall and CPU."""
    cap, count = cv2.VideoCapture(str(video)), [0]

    def drain() -> None:
        while cap.read()[0]:
            count[0] += 1

    wall, cpu = timed(drain)
    cap.release()
    return {"decode_ms": 1000 * wall / count[0], "decode_cpu_ms": 1000 * cpu / count[0]}


def frame_io_bundle(root: Path) -> Path:
    """A demo-like frame-IO bundle (vitmicro14 at 112 px, random weights) built as frame_pipeline.py does."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from frame_pipeline import TASKS, model

    from simokit.export.bundle import write_bundle
    from simokit.export.onnx import ExportSpec

    spec = ExportSpec(TASKS, 112, 112, input_kind="uint8", io="frame", seg_output="labels")
    verify = np.random.default_rng(0).integers(0, 256, (2, 112, 112, 3), np.uint8)
    return write_bundle(root / "frame-io", model("vitmicro14", 112), spec, verify)


def spread(runs: list[float]) -> dict[str, float]:
    """Median, min and max of repeated runs."""
    return {"median": statistics.median(runs), "min": min(runs), "max": max(runs)}


def throughput(engine, video: Path, frames: np.ndarray, repeat: int) -> dict:  # type: ignore[no-untyped-def]
    """Alternating runs of (a) engine, (b) file stream and the in-memory stream; per-run numbers."""
    for f in frames[:20]:  # warm-up: first runs allocate and tune
        engine.infer(f)
    runs: dict[str, list[float]] = {k: [] for k in ("engine", "file", "memory", "engine_cpu", "file_cpu")}
    for _ in range(repeat):
        fps, cpu = engine_run(engine, frames)
        runs["engine"].append(fps)
        runs["engine_cpu"].append(cpu)
        fps, cpu = stream_run(engine, str(video))
        runs["file"].append(fps)
        runs["file_cpu"].append(cpu)
        runs["memory"].append(stream_run(engine, MemoryFrames(frames))[0])
    ratios = [b / a for a, b in zip(runs["engine"], runs["file"], strict=True)]
    memory = [b / a for a, b in zip(runs["engine"], runs["memory"], strict=True)]
    return {
        "engine_fps_runs": runs["engine"],
        "file_stream_fps_runs": runs["file"],
        "memory_stream_fps_runs": runs["memory"],
        "ratio_runs": ratios,
        "ratio": spread(ratios),
        "memory_ratio": spread(memory),
        "engine_fps": spread(runs["engine"]),
        "file_stream_fps": spread(runs["file"]),
        "best_ratio": max(runs["file"]) / max(runs["engine"]),  # the quietest moment of each
        "engine_cpu_ms": statistics.median(runs["engine_cpu"]),
        "file_stream_cpu_ms": statistics.median(runs["file_cpu"]),
    }


def live_run(engine, frames: np.ndarray, fps: float, count: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """(c): latency of a paced live source, newest frame only."""
    live = Stream(engine, PacedFrames(frames, fps), max_frames=count, log_every=0).run()
    return {
        "live_fps": fps,
        "live_delivered": live.delivered,
        "live_captured": live.captured,
        "live_dropped": live.dropped,
        "live_p50_ms": live.latency_ms(50),
        "live_p99_ms": live.latency_ms(99),
        "live_infer_ms": live.infer_ms(),
        "live_bound_ms": 2000 / fps + live.infer_ms(),
    }


def report(res: dict) -> None:  # type: ignore[type-arg]
    """Print the table."""
    r, e, f = res["ratio"], res["engine_fps"], res["file_stream_fps"]
    print(f"{res['device']}, frames {res['size']}; {res['machine']}")
    print(
        f"engine batch-1: {e['median']:6.1f} fps median ({e['min']:.1f}-{e['max']:.1f}), "
        f"{res['engine_cpu_ms']:.1f} ms CPU/frame"
    )
    print(
        f"file stream:    {f['median']:6.1f} fps median ({f['min']:.1f}-{f['max']:.1f}), "
        f"{res['file_stream_cpu_ms']:.1f} ms CPU/frame"
    )
    print(
        f"ratio:          {r['median']:.3f} median ({r['min']:.3f}-{r['max']:.3f}; goal >= 0.95), "
        f"runs {', '.join(f'{x:.3f}' for x in res['ratio_runs'])}"
    )
    print(f"best of each:   ratio {res['best_ratio']:.3f}")
    m = res["memory_ratio"]
    print(f"memory stream:  ratio {m['median']:.3f} median ({m['min']:.3f}-{m['max']:.3f}; no decoding)")
    print(f"decode alone:   {res['decode_ms']:.2f} ms/frame wall, {res['decode_cpu_ms']:.2f} ms CPU")
    if "record_stream_fps" in res:
        print(f"with --record:  {res['record_stream_fps']:6.1f} fps")
    print(
        f"live {res['live_fps']:g} fps: p50 {res['live_p50_ms']:.1f} ms, p99 {res['live_p99_ms']:.1f} ms "
        f"(bound {res['live_bound_ms']:.1f} ms), {res['live_dropped']} dropped of {res['live_captured']}"
    )


def machine_line(threads: int | None) -> str:
    """nproc, ONNX Runtime version and threads."""
    import onnxruntime

    cores = len(os.sched_getaffinity(0))
    return f"nproc {cores}, onnxruntime {onnxruntime.__version__} CPU, intra-op threads {threads or 'all'}"


def main() -> None:
    """Measure and print a table (and JSON with --json)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--bundle",
        default="simokit-demo/bundle",
        help="bundle to measure (default: %(default)s, the one `simokit demo` writes)",
    )
    p.add_argument("--build-frame-io", action="store_true", help="build a demo-like frame-IO bundle instead")
    p.add_argument("--size", default="320x240", help="video width x height (default: %(default)s)")
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--live-fps", type=float, default=30.0)
    p.add_argument("--live-frames", type=int, default=300)
    p.add_argument("--repeat", type=int, default=3, help="alternating runs of (a) and (b)")
    p.add_argument("--threads", type=int, help="ONNX Runtime intra-op threads (default: all cores)")
    p.add_argument(
        "--spin",
        action="store_true",
        help="open the engine with ONNX Runtime's idle threads busy-waiting (simokit run --spin)",
    )
    p.add_argument("--record", action="store_true", help="also time the file stream with --record")
    p.add_argument("--json", help="write results here")
    args = p.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        bundle = frame_io_bundle(Path(tmp)) if args.build_frame_io else args.bundle
        engine = load(bundle, threads=args.threads, spin=args.spin)
        video = Path(tmp) / "scenes.mp4"
        frames = write_video(video, args.frames, width, height, args.live_fps)
        res = {"command": shlex.join(["python", *sys.argv]), "device": engine.describe(), "size": args.size}
        res["spin"] = args.spin
        res |= decode_alone(video) | throughput(engine, video, frames, args.repeat)
        if args.record:
            stream = Stream(engine, str(video), log_every=0)
            stream.sinks += make_sinks(engine.meta, stream.stats, record=Path(tmp) / "rec.mp4")
            rec = stream.run()
            res["record_stream_fps"] = rec.delivered / rec.elapsed()
        res |= live_run(engine, frames, args.live_fps, args.live_frames)
    load_after = os.getloadavg()
    res["machine"] = (
        f"{machine_line(args.threads)}; load average (1/5/15 min) before "
        f"{'/'.join(f'{x:.2f}' for x in load_before)}, after {'/'.join(f'{x:.2f}' for x in load_after)}"
    )
    report(res)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()

"""End-to-end `engine.infer(frame)` against the graph's own time, model-size IO vs frame IO.

For a demo-like bundle (vitmicro14 at 112 px) and ViT-S/14 at 224 px, both with random weights and
linear seg/depth/normal heads, this builds three bundles per model: model-size IO (the numpy/OpenCV
path resizes the frame and every output plane), frame IO (resizing, argmax and upsampling inside
the graph) and frame IO with outputs left at the model's size. It reports, ONNX Runtime CPU,
batch 1, --threads threads, every configuration measured in interleaved rounds (medians):

- graph: the model-size graph alone on a model-size uint8 input, ms;
- infer() on a 640x480 and a 1280x720 frame with each bundle, ms and the ratio to the graph;
- peak memory of one 4000x6000 frame through the frame-IO engines (outputs at the frame's and at
  the model's size) above the loaded, warmed engine holding the frame (a fresh process; resident
  set sampled every ms), MB, with the bytes of the outputs themselves beside it.

    python benchmarks/frame_pipeline.py [--threads 2] [--iters 30] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from simokit.export.bundle import write_bundle
from simokit.export.onnx import ExportSpec
from simokit.models import HeadConfig, MultiTaskModel, build_encoder, build_head
from simokit.runtime import load
from simokit.runtime.onnx_session import CPU, session_for

TASKS = ("seg", "depth", "normal")
MODELS = {"demo-like vitmicro14@112": ("vitmicro14", 112), "ViT-S/14@224": ("vits14", 224)}
FRAMES = {"640x480": (480, 640), "1280x720": (720, 1280)}

PEAK = """
import os, sys, threading, numpy as np
from simokit.runtime import load
page = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page
engine = load(sys.argv[1], threads=int(sys.argv[2]))
engine.infer(np.zeros((480, 640, 3), np.uint8))
frame = np.random.default_rng(0).integers(0, 256, (4000, 6000, 3), np.uint8)
base, peak, done = rss(), [0], threading.Event()
def sample():
    while not done.is_set():
        peak[0] = max(peak[0], rss())
        done.wait(0.001)
thread = threading.Thread(target=sample)
thread.start()
out = engine.infer(frame)
peak[0] = max(peak[0], rss())
done.set()
thread.join()
print(peak[0] - base, sum(v.nbytes for v in out.values()))
"""


def model(arch: str, size: int, seed: int = 0) -> MultiTaskModel:
    """Random-weight encoder (position embedding at `size`), linear seg (11 classes), depth, normals."""
    torch.manual_seed(seed)
    encoder = build_encoder(arch, img_size=size)
    dim = encoder.embed_dim
    heads = {
        "seg": build_head(HeadConfig("linear", 11, "none"), dim),
        "depth": build_head(HeadConfig("linear", 1, "exp"), dim),
        "normal": build_head(HeadConfig("linear", 3, "normalize"), dim),
    }
    return MultiTaskModel(encoder, heads).eval()


def interleaved_ms(fns: dict[str, Callable[[], object]], rounds: int, per_round: int) -> dict[str, float]:
    """Median wall time (ms) of each function, measured in rounds that visit every function in turn.

    On a shared machine the speed drifts by tens of percent over a minute; interleaving puts every
    configuration under the same drift, so their ratios hold even when the absolute times do not.
    """
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            # a pause, then two untimed calls: the previous configuration's ONNX Runtime threads
            # spin on after its run and halved a small graph's speed when it was timed at once
            time.sleep(0.05)
            fn(), fn()
            for _ in range(per_round):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    return {k: 1000 * float(np.median(v)) for k, v in times.items()}


def bench(name: str, arch: str, size: int, root: Path, threads: int, iters: int) -> dict[str, object]:
    """One model's row: graph time, infer() per frame size and IO, 4000x6000 peak memory."""
    m = model(arch, size)
    verify = np.random.default_rng(0).integers(0, 256, (2, size, size, 3), np.uint8)
    frame_spec = ExportSpec(TASKS, size, size, input_kind="uint8", io="frame", seg_output="labels")
    specs = {
        "model": ExportSpec(TASKS, size, size, input_kind="uint8", io="model"),
        "frame": frame_spec,
        "frame-modelsize": replace(frame_spec, output_size="model"),
    }
    bundles = {io: write_bundle(root / f"{arch}-{io}", m, s, verify) for io, s in specs.items()}
    graph = session_for(bundles["model"] / "model.onnx", threads, CPU)
    x = verify[:1]
    fns: dict[str, Callable[[], object]] = {"graph_ms": lambda: graph.run(None, {"image": x})}
    rng = np.random.default_rng(1)
    for io, path in bundles.items():
        engine = load(path, threads=threads)
        for label, (h, w) in FRAMES.items():
            frame = rng.integers(0, 256, (h, w, 3), np.uint8)
            fns[f"{io}_{label}_ms"] = lambda e=engine, f=frame: e.infer(f)
    row: dict[str, object] = {"model": name, **interleaved_ms(fns, rounds=max(3, iters // 5), per_round=5)}
    for io, suffix in (("frame", ""), ("frame-modelsize", "_modelsize")):
        code = [sys.executable, "-c", PEAK, str(bundles[io]), str(threads)]
        peak, out_bytes = subprocess.run(code, capture_output=True, text=True, check=True).stdout.split()
        row[f"peak_4000x6000{suffix}_mb"] = int(peak) / 2**20
        row[f"outputs_4000x6000{suffix}_mb"] = int(out_bytes) / 2**20
    return row


def table(rows: list[dict[str, object]]) -> str:
    """Markdown: per model and frame size, ms and ratio to the graph, today (model IO) vs frame IO."""
    lines = [
        "| model | graph ms | frame | model IO infer ms (x graph) | frame IO infer ms (x graph) "
        "| frame IO, outputs at model size |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        g = float(r["graph_ms"])  # type: ignore[arg-type]
        for label in FRAMES:
            ms = [float(r[f"{io}_{label}_ms"]) for io in ("model", "frame", "frame-modelsize")]  # type: ignore[arg-type]
            cells = " | ".join(f"{t:.2f} ({t / g:.2f}x)" for t in ms)
            lines.append(f"| {r['model']} | {g:.2f} | {label} | {cells} |")
    lines.append("")
    lines.append("| model | outputs at | 4000x6000 peak above loaded engine, MB | of which outputs, MB |")
    lines.append("|---|---|---|---|")
    for r in rows:
        for where, sfx in (("the frame's size", ""), ("the model's size", "_modelsize")):
            peak, out = r[f"peak_4000x6000{sfx}_mb"], r[f"outputs_4000x6000{sfx}_mb"]
            lines.append(f"| {r['model']} | {where} | {peak:.0f} | {out:.0f} |")
    return "\n".join(lines)


def main() -> None:
    """Build the bundles in a temp dir, measure, print the table (and write JSON with --out)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--iters", type=int, default=30)
    p.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [bench(n, *MODELS[n], Path(tmp), args.threads, args.iters) for n in args.models]
    print(table(rows))
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()

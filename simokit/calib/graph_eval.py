"""Per-task metrics and CPU latency of one graph of a bundle, through the runtime's own processing.

Frames go in as uint8 RGB at the labels' resolution and come back mapped to it by `Engine.infer`,
so FP32, FP16 and INT8 are compared exactly as a robot would run them.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from simokit.calib.frames import SCENES, nyuv2_split
from simokit.calib.readers import prepare
from simokit.data.arrays import SceneArrays
from simokit.data.targets import channels_first
from simokit.errors import DataError
from simokit.runtime.backends.ort import OrtEngine
from simokit.runtime.bundle import BundleMeta
from simokit.runtime.onnx_session import CPU
from simokit.runtime.timing import time_calls
from simokit.tasks.metrics import make_metric
from simokit.tasks.score import Metrics, task_scores

NONE = "none"


def load_labelled(spec: str, progress: bool = True) -> SceneArrays | None:
    """'scenes[:split]' (default split 'test', the recipe's size), an NYUv2 folder, or 'none'."""
    if spec == NONE:
        return None
    if spec == SCENES or spec.startswith(SCENES + ":"):
        from simokit.data.scenes import load_scenes
        from simokit.recipe import DataConfig

        d = DataConfig()
        split = spec.partition(":")[2] or "test"
        return load_scenes(split, d.test, d.size, d.domains, d.seed, progress=progress)
    path = Path(spec).expanduser()
    nyu = nyuv2_split(path) if path.is_dir() else None
    if nyu is None:
        raise DataError(f"--eval '{spec}' is neither 'scenes[:split]', 'none' nor an NYUv2-layout folder")
    from simokit.data.folders import NYUv2Folder

    root, split = nyu
    if split == "train" and (root / "test").is_dir():
        split = "test"  # the root was given: evaluate on its test split
    return NYUv2Folder(root, split).to_arrays()


def graph_engine(meta: BundleMeta, model: Path, threads: int | None = None) -> OrtEngine:
    """The runtime's ONNX Runtime engine on any graph file of a bundle (`meta` names its input and tasks).

    CPU only, even where onnxruntime-gpu is installed: the calibration report states CPU accuracy
    and latency of the FP32 and INT8 graphs side by side.
    """
    return OrtEngine(model.parent, meta, threads=threads, graph=model.name, providers=CPU)


def eval_tasks(meta: BundleMeta, data: SceneArrays) -> tuple[str, ...]:
    """The bundle's tasks that `data` has labels for."""
    return tuple(t for t in meta.tasks if getattr(data, t, None) is not None)


def evaluate_graph(
    meta: BundleMeta, model: Path, data: SceneArrays, batch: int = 16, threads: int | None = None
) -> Metrics:
    """Run `model` on every image of `data` through the runtime path; return metrics per task."""
    engine = graph_engine(meta, model, threads)
    tasks = eval_tasks(meta, data)
    seg_out = meta.outputs.get("seg", {})
    classes = int(seg_out["shape"][1]) if seg_out.get("kind") == "logits" else len(meta.classes) or None
    metrics = {t: make_metric(t, classes) for t in tasks}
    for start in range(0, len(data), batch):
        idx = np.arange(start, min(start + batch, len(data)))
        out = engine.infer(np.asarray(data.image[idx]), bgr=False)
        for task in tasks:
            target = channels_first(task, np.asarray(getattr(data, task)[idx]))
            metrics[task].update(out[task], target)
    return {t: m.compute() for t, m in metrics.items()}


def drops(metrics: Metrics, reference: Metrics) -> dict[str, float]:
    """Per-task normalised score drop in points: 100 * (1 - score relative to `reference`)."""
    return {t: 100.0 * (1.0 - s) for t, s in task_scores(metrics, reference).items()}


def latencies(
    meta: BundleMeta, models: list[Path], threads: int | None = None, rounds: int = 3, iters: int = 20
) -> list[float]:
    """ORT CPU p50 latency (ms) of each graph alone at batch 1 on a prepared input.

    The graphs are timed in alternating rounds and each one's median p50 is kept, so a burst of load
    from another process does not land on one precision only. Only one session exists at a time:
    an idle session's spinning worker threads would otherwise slow down the one being timed.
    """
    frame = np.random.default_rng(0).integers(0, 256, (1, meta.input.height, meta.input.width, 3), np.uint8)
    x = prepare(meta, frame)
    p50: list[list[float]] = [[] for _ in models]
    for _ in range(rounds):
        for times, model in zip(p50, models, strict=True):
            engine = graph_engine(meta, model, threads)
            run = partial(engine._run, x)  # the graph alone, on the prepared input
            time_calls(run, 1, warmup=10, iters=5)  # thread pools, caches, clock ramp-up
            times.append(time_calls(run, 1, warmup=0, iters=iters).p50_ms)
            del run, engine
    return [float(np.median(t)) for t in p50]

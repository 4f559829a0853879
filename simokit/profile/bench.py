"""Timing primitives: warm-up then timed runs, percentiles, throughput, and the machine's matmul peak.

Needs numpy and ONNX Runtime only, so a robot can profile a bundle without torch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class LatencyStats:
    """Per-call latency percentiles in milliseconds and images per second at `batch`."""

    batch: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    images_per_s: float


def time_calls(fn: Callable[[], object], batch: int, warmup: int = 5, iters: int = 30) -> LatencyStats:
    """Call `fn` `warmup` times untimed, then `iters` times timed; return percentiles."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    arr = np.asarray(times)
    p50 = float(np.percentile(arr, 50))
    return LatencyStats(
        batch,
        p50,
        float(np.percentile(arr, 90)),
        float(np.percentile(arr, 99)),
        float(arr.mean()),
        1000.0 * batch / p50,
    )


def session(path: str | Path, threads: int | None = None, spin: bool = True):  # type: ignore[no-untyped-def]  # ORT is untyped
    """An ONNX Runtime CPU (or CUDA) session with `threads` intra-op threads.

    `spin=False` stops its idle threads from busy-waiting after a run, which sessions that take
    turns on the same cores need (spinning threads of one take the cores from the next).
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    if not spin:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers = [
        p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()
    ]
    return ort.InferenceSession(str(path), opts, providers=providers)


def matmul_peak_gflops(n: int = 2048, threads: int | None = None, iters: int = 10) -> tuple[float, str]:
    """GFLOP/s of an n x n float32 matmul: in ONNX Runtime when onnx is installed, else numpy."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    flops = 2.0 * n**3
    try:
        from onnx import TensorProto, helper
    except ImportError:
        stats = time_calls(lambda: a @ a, 1, warmup=2, iters=iters)
        return flops / (stats.p50_ms / 1000.0) / 1e9, "numpy"
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])],
        "matmul",
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [n, n]) for x in ("a", "b")],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(
        model.SerializeToString(),
        opts,
        providers=["CPUExecutionProvider"],
    )
    stats = time_calls(lambda: sess.run(None, {"a": a, "b": a}), 1, warmup=2, iters=iters)
    return flops / (stats.p50_ms / 1000.0) / 1e9, "onnxruntime"


def rss_mb() -> float:
    """Current resident memory of this process in MiB (Linux /proc; 0 where unavailable)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    import os

    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20

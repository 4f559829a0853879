"""Timing primitives: warm-up then timed calls, latency percentiles and throughput (numpy only).

Robot side, so calibration, profiling and benchmarks time engines the same way without torch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

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

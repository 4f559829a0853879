"""Stream statistics: capture and inference rates, end-to-end latency percentiles, dropped frames."""

from __future__ import annotations

import itertools
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

# Percentiles come from a window this long, so a days-long robot run keeps bounded memory.
LATENCY_WINDOW = 10_000


@dataclass
class StreamStats:
    """Counters updated by the stream's stages (each counter is written by one thread only)."""

    started: float = field(default_factory=time.perf_counter)
    captured: int = 0
    inferred: int = 0
    delivered: int = 0
    dropped: int = 0
    reconnects: int = 0
    infer_seconds: float = 0.0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    stopped: float | None = None
    _marks: tuple[float, int, int] = field(default=(0.0, 0, 0), init=False, repr=False)  # at last report

    def elapsed(self) -> float:
        """Seconds since the stream started (frozen once it stopped)."""
        return (self.stopped or time.perf_counter()) - self.started

    def capture_fps(self) -> float:
        """Frames read from the source per second, over the whole run."""
        return self.captured / max(self.elapsed(), 1e-9)

    def infer_fps(self) -> float:
        """Frames inferred per second, over the whole run (the stream's throughput)."""
        return self.inferred / max(self.elapsed(), 1e-9)

    def infer_ms(self) -> float:
        """Mean time inside Engine.infer per frame (pre-processing, graph, post-processing)."""
        return 1000.0 * self.infer_seconds / max(self.inferred, 1)

    def latency_ms(self, q: float, last: int = 0) -> float:
        """Percentile `q` (0..100) of capture-to-sink latency, ms (the `last` frames if > 0); nan if none."""
        n = len(self.latencies)
        if not n:
            return float("nan")
        values = list(itertools.islice(self.latencies, max(n - last, 0) if last else 0, n))
        return 1000.0 * float(np.percentile(values, q))

    def recent(self) -> str:
        """One line on the period since the last call (rates over that period), for periodic logs."""
        now = time.perf_counter()
        t0, c0, i0 = self._marks
        dt = max(now - (t0 or self.started), 1e-9)
        self._marks = (now, self.captured, self.inferred)
        return (
            f"capture {(self.captured - c0) / dt:.1f} fps, infer {(self.inferred - i0) / dt:.1f} fps, "
            f"latency p50 {self.latency_ms(50):.1f} ms p99 {self.latency_ms(99):.1f} ms, "
            f"dropped {self.dropped}, frames {self.delivered}"
        )

    def summary(self) -> str:
        """The end-of-run report, a few lines."""
        return (
            f"frames: {self.delivered} delivered, {self.captured} captured, {self.dropped} dropped, "
            f"{self.reconnects} reconnects in {self.elapsed():.1f} s\n"
            f"rates: capture {self.capture_fps():.1f} fps, inference {self.infer_fps():.1f} fps "
            f"({self.infer_ms():.1f} ms per frame in the engine)\n"
            f"latency (capture to sink): p50 {self.latency_ms(50):.1f} ms, p99 {self.latency_ms(99):.1f} ms"
        )

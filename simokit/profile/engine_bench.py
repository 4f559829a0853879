"""Latency and throughput of one Engine as its caller sees it: a local bundle or a triton:// server.

`simokit profile` compares graph files; a served bundle has none at hand, so this times the
engine's graph call (`Engine._run`, which for a triton:// engine includes the network round trip)
on prepared random batches at the model's input size. Needs numpy only.
"""

from __future__ import annotations

from dataclasses import asdict
from functools import partial
from typing import Any

import numpy as np

from simokit.profile.bench import LatencyStats, time_calls
from simokit.runtime.engine import Engine
from simokit.runtime.triton_io import example_shape, input_dtype


def profile_engine(
    engine: Engine, batches: tuple[int, ...] = (1, 8), warmup: int = 5, iters: int = 30
) -> dict[str, Any]:
    """{'engine': describe(), 'batches': {batch: LatencyStats as dict}} for each batch size."""
    rng = np.random.default_rng(0)
    by_batch = {}
    for batch in batches:
        x = rng.integers(0, 256, size=example_shape(engine.meta, batch)).astype(input_dtype(engine.meta))
        by_batch[str(batch)] = asdict(time_calls(partial(engine._run, x), batch, warmup, iters))
    return {"engine": engine.describe(), "batches": by_batch}


def engine_table(result: dict[str, Any]) -> str:
    """Markdown table of `profile_engine`'s result."""
    lines = [
        result["engine"],
        "",
        "| batch | p50 ms | p90 ms | p99 ms | images/s |",
        "|---|---|---|---|---|",
    ]
    for batch, row in result["batches"].items():
        s = LatencyStats(**row)
        lines.append(f"| {batch} | {s.p50_ms:.2f} | {s.p90_ms:.2f} | {s.p99_ms:.2f} | {s.images_per_s:.1f} |")
    return "\n".join(lines)

"""Latency and throughput of one Engine as its caller sees it: a triton:// server or a routed bundle.

`simokit profile` compares graph files; a served bundle has none at hand, so this times the
engine's graph call (`Engine._run`, which for a triton:// engine includes the network round trip)
on prepared random batches at the model's input size. A routed bundle is timed in its parts: the
router (feature graph + residuals), each domain's engine, and the whole routed call. Needs numpy only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from typing import Any

import numpy as np

from simokit.runtime.engine import Engine
from simokit.runtime.routed import RoutedEngine
from simokit.runtime.timing import LatencyStats, time_calls
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


def profile_routed(
    engine: RoutedEngine, batches: tuple[int, ...] = (1, 8), warmup: int = 5, iters: int = 30
) -> dict[str, Any]:
    """{'engine': describe(), 'parts': {part: {batch: LatencyStats as dict}}}: router, each domain, all."""
    rng = np.random.default_rng(0)
    parts: dict[str, dict[str, Any]] = {}
    for batch in batches:
        x = rng.integers(0, 256, size=example_shape(engine.meta, batch)).astype(input_dtype(engine.meta))
        calls: dict[str, Callable[[], object]] = {"router (features + residuals)": partial(engine.route, x)}
        for domain in engine.router.domains:
            calls[f"{domain} engine"] = partial(engine.engine(domain)._run, x)
        calls["routed, end to end"] = partial(engine._run, x)
        for name, call in calls.items():
            parts.setdefault(name, {})[str(batch)] = asdict(time_calls(call, batch, warmup, iters))
    return {"engine": engine.describe(), "parts": parts}


def routed_table(result: dict[str, Any]) -> str:
    """Markdown table of `profile_routed`'s result: p50 / p90 ms per part and batch."""
    batches = list(next(iter(result["parts"].values())))
    lines = [
        result["engine"],
        "",
        "| part | " + " | ".join(f"batch {b} p50 / p90 ms" for b in batches) + " |",
        "|---|" + "---|" * len(batches),
    ]
    for part, rows in result["parts"].items():
        cells = [f"{rows[b]['p50_ms']:.2f} / {rows[b]['p90_ms']:.2f}" for b in batches]
        lines.append(f"| {part} | " + " | ".join(cells) + " |")
    return "\n".join(lines)

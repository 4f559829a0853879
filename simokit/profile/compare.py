"""The merged graph against the separate expert graphs, on the same backend and the same input.

Protocol: each graph gets its own ONNX Runtime session; every measurement warms up, then times
`iters` calls. "separate" is what a robot running the experts would see: the expert sessions run
one after another on each frame, with thread spinning off (ONNX Runtime's idle threads otherwise
busy-wait after a run and take the cores from the next session: "separate_spinning" times that
default, several times slower on few cores). "separate_alone" sums each expert timed on its own,
a lower bound that hides the cache and thread contention of running several models.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from simokit.profile.bench import matmul_peak_gflops
from simokit.runtime.onnx_session import session_for
from simokit.runtime.timing import LatencyStats, time_calls


def _input_for(sess: Any, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    inp = sess.get_inputs()[0]
    # free height/width (frame-IO or dynamic-size graphs): the size the graph was exported at
    export = json.loads(sess.get_modelmeta().custom_metadata_map.get("simokit.export", "{}"))
    hw = iter([export.get("height"), export.get("width")])
    shape = [batch, *[int(d) if isinstance(d, int) else int(next(hw)) for d in inp.shape[1:]]]
    rng = np.random.default_rng(seed)
    if "uint8" in inp.type:
        return {inp.name: rng.integers(0, 256, size=shape, dtype=np.uint8)}
    return {inp.name: rng.standard_normal(shape).astype(np.float32)}


_RSS_PROBE = """
import sys
import numpy as np
from simokit.profile.bench import rss_mb
from simokit.profile.compare import _input_for
from simokit.runtime.onnx_session import session_for
threads = int(sys.argv[1]) or None
before = rss_mb()
sessions = [session_for(p, threads) for p in sys.argv[2:]]
for s in sessions:
    s.run(None, _input_for(s, 1))
print(rss_mb() - before)
"""


def sessions_rss_mb(paths: list[Path], threads: int | None = None) -> float:
    """Resident memory that loading and running `paths` once adds, measured in a fresh process.

    In-process numbers mislead: the first session pays for ORT's thread pools and arenas, and memory
    freed by earlier work is reused.
    """
    proc = subprocess.run(
        [sys.executable, "-c", _RSS_PROBE, str(threads or 0), *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        return float(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return float("nan")


def bundle_graphs(root: Path) -> tuple[Path, dict[str, Path], float | None]:
    """A bundle's merged graph, its per-expert graphs and its FLOPs per image, for `profile_graphs`."""
    from simokit.runtime.bundle import MODEL_FILE, BundleError, read_meta

    meta = read_meta(root)
    experts = {t: root / "experts" / f"{t}.onnx" for t in meta.tasks}
    missing = [str(p) for p in experts.values() if not p.is_file()]
    if missing:
        raise BundleError(f"{root}: no separate expert graphs ({missing[0]}); rebuild with `simokit build`")
    return root / MODEL_FILE, experts, meta.extra.get("flops_per_image")


def profile_graphs(
    merged: Path,
    experts: dict[str, Path],
    flops_per_image: float | None = None,
    batches: tuple[int, ...] = (1, 8),
    threads: int | None = None,
    warmup: int = 5,
    iters: int = 30,
) -> dict[str, Any]:
    """Latency, throughput, memory, sizes and achieved GFLOP/s; keys merged/separate/ratio/..."""
    merged_rss = sessions_rss_mb([merged], threads)
    experts_rss = sessions_rss_mb(list(experts.values()), threads)
    by_batch = _time_batches(merged, experts, batches, threads, warmup, iters)
    b1 = by_batch[str(batches[0])]
    result: dict[str, Any] = {
        "protocol": __doc__.split("\n\n")[1].replace("\n", " ") if __doc__ else "",
        "merged": {
            "p50_ms": b1["merged"]["p50_ms"],
            "rss_mb": merged_rss,
            "file_mb": merged.stat().st_size / 1e6,
        },
        "separate": {
            "p50_ms": b1["separate"]["p50_ms"],
            "alone_sum_p50_ms": b1["separate_alone_sum_p50_ms"],
            "rss_mb": experts_rss,
            "file_mb": sum(p.stat().st_size for p in experts.values()) / 1e6,
        },
        "ratio": b1["merged"]["p50_ms"] / b1["separate"]["p50_ms"],
        "ratio_vs_alone_sum": b1["merged"]["p50_ms"] / b1["separate_alone_sum_p50_ms"],
        "batches": by_batch,
        "threads": threads,
    }
    peak, source = matmul_peak_gflops(threads=threads)
    result["matmul_peak_gflops"] = {"value": peak, "measured_with": source}
    if flops_per_image:
        achieved = flops_per_image / (b1["merged"]["p50_ms"] / 1000.0) / 1e9 * int(batches[0])
        result["flops_per_image"] = flops_per_image
        result["merged"]["gflops_per_s"] = achieved
        result["merged"]["fraction_of_peak"] = achieved / peak
    return result


def _time_batches(
    merged: Path,
    experts: dict[str, Path],
    batches: tuple[int, ...],
    threads: int | None,
    warmup: int,
    iters: int,
) -> dict[str, Any]:
    """{batch: merged, separate (taking turns), separate_spinning and each expert alone} as dicts."""
    merged_sess = session_for(merged, threads)
    expert_sess = {t: session_for(p, threads) for t, p in experts.items()}
    taking_turns = [session_for(p, threads, spin=False) for p in experts.values()]
    by_batch: dict[str, Any] = {}
    for batch in batches:
        feed = _input_for(merged_sess, batch)
        m = time_calls(partial(merged_sess.run, None, feed), batch, warmup, iters)
        alone = {
            t: time_calls(partial(s.run, None, feed), batch, warmup, iters) for t, s in expert_sess.items()
        }

        def in_turn(sessions: list[Any], f: dict[str, np.ndarray] = feed) -> None:
            for s in sessions:
                s.run(None, f)

        turn = time_calls(partial(in_turn, taking_turns), batch, warmup, iters)
        spinning = time_calls(partial(in_turn, list(expert_sess.values())), batch, warmup, iters)
        by_batch[str(batch)] = {
            "merged": asdict(m),
            "separate": asdict(turn),
            "separate_spinning": asdict(spinning),
            "separate_alone": {t: asdict(s) for t, s in alone.items()},
            "separate_alone_sum_p50_ms": sum(s.p50_ms for s in alone.values()),
        }
    return by_batch


def table(result: dict[str, Any]) -> str:
    """Markdown table of the profile."""
    lines = ["| batch | engine | p50 ms | p90 ms | p99 ms | images/s |", "|---|---|---|---|---|---|"]
    for batch, r in result["batches"].items():
        for name in ("merged", "separate"):
            s = LatencyStats(**r[name])
            lines.append(
                f"| {batch} | {name} | {s.p50_ms:.2f} | {s.p90_ms:.2f} | {s.p99_ms:.2f} | "
                f"{s.images_per_s:.1f} |"
            )
        if "separate_spinning" in r:
            s = LatencyStats(**r["separate_spinning"])
            lines.append(
                f"| {batch} | separate, ORT default threads (spinning) | {s.p50_ms:.2f} | {s.p90_ms:.2f} | "
                f"{s.p99_ms:.2f} | {s.images_per_s:.1f} |"
            )
        lines.append(
            f"| {batch} | separate, each alone (sum of p50) | {r['separate_alone_sum_p50_ms']:.2f} | | | |"
        )
    m, s = result["merged"], result["separate"]
    lines += [
        "",
        f"ratio merged/separate p50: {result['ratio']:.3f} "
        f"(vs experts timed alone: {result['ratio_vs_alone_sum']:.3f})",
        f"memory (RSS added by loading and one run, fresh process): merged {m['rss_mb']:.0f} MiB, "
        f"separate {s['rss_mb']:.0f} MiB; files: merged {m['file_mb']:.1f} MB, "
        f"separate {s['file_mb']:.1f} MB",
        f"matmul peak: {result['matmul_peak_gflops']['value']:.0f} GFLOP/s "
        f"({result['matmul_peak_gflops']['measured_with']})",
    ]
    if "torch_eager" in result:
        lines.append(
            f"PyTorch eager, same merged model: {result['torch_eager']['p50_ms']:.2f} ms p50 "
            f"(ONNX Runtime / eager = {result['ort_vs_torch_eager']:.2f})"
        )
    if "gflops_per_s" in m:
        lines.append(
            f"merged: {result['flops_per_image'] / 1e9:.2f} GFLOP/image, {m['gflops_per_s']:.0f} GFLOP/s "
            f"= {100 * m['fraction_of_peak']:.0f}% of the matmul peak"
        )
    return "\n".join(lines)


def write_outputs(result: dict[str, Any], json_path: Path | None, plot_path: Path | None) -> None:
    """Write the JSON and a bar plot of p50 latency per batch (merged vs separate)."""
    if json_path:
        json_path.write_text(json.dumps(result, indent=1))
    if plot_path:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        batches = list(result["batches"])
        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        x = np.arange(len(batches))
        for i, name in enumerate(("merged", "separate")):
            ax.bar(x + 0.4 * i, [result["batches"][b][name]["p50_ms"] for b in batches], 0.4, label=name)
        ax.set_xticks(x + 0.2, [f"batch {b}" for b in batches])
        ax.set_ylabel("p50 latency (ms)")
        ax.legend()
        fig.savefig(plot_path, dpi=110, bbox_inches="tight")
        plt.close(fig)

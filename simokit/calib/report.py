"""The calibration report: per-task metrics of each precision, normalised drops, latency, a plot.

Scores are normalised against the bundle's own FP32 graph (1.0 = FP32), each metric in its own
direction (simokit.tasks.score), so a drop of 1 point means the task lost 1% of its FP32 score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from simokit.calib.graph_eval import drops
from simokit.tasks.score import Metrics


@dataclass
class Precision:
    """One graph of the bundle: its file, metrics (may be empty), p50 latency and size."""

    name: str
    file: str
    latency_ms: float
    size_mb: float
    metrics: Metrics = field(default_factory=dict)


def _drops(p: Precision, ref: Precision) -> dict[str, float]:
    return drops(p.metrics, ref.metrics) if p.metrics and ref.metrics else {}


def summary(results: list[Precision]) -> dict[str, dict[str, object]]:
    """JSON-safe {precision: {latency_ms, speedup, drops, mean_drop}} against the first (FP32)."""
    ref = results[0]
    out: dict[str, dict[str, object]] = {}
    for p in results:
        d = _drops(p, ref)
        out[p.name] = {
            "file": p.file,
            "latency_ms": round(p.latency_ms, 3),
            "speedup": round(ref.latency_ms / p.latency_ms, 3),
            "drops": {t: round(v, 3) for t, v in d.items()},
            "mean_drop": round(sum(d.values()) / len(d), 3) if d else None,
        }
    return out


def metric_table(results: list[Precision]) -> str:
    """Markdown: one row per task metric, one column per precision."""
    ref = results[0]
    if not ref.metrics:
        return "(no labelled data: accuracy not measured)"
    lines = ["| task | metric | " + " | ".join(p.name for p in results) + " |"]
    lines.append("|---|---|" + "---|" * len(results))
    for task, values in ref.metrics.items():
        for metric in values:
            row = [f"{p.metrics.get(task, {}).get(metric, float('nan')):.4g}" for p in results]
            lines.append(f"| {task} | {metric} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def speed_table(results: list[Precision], threads: int | None) -> str:
    """Markdown: file, size, latency, speed-up and normalised drop per task for each precision."""
    ref = results[0]
    tasks = list(ref.metrics)
    lines = [
        "| precision | file | MB | ORT CPU p50 ms | speed-up | "
        + " | ".join(f"{t} drop" for t in tasks)
        + " | mean drop |",
        "|---|---|---|---|---|" + "---|" * (len(tasks) + 1),
    ]
    for p in results:
        d = _drops(p, ref)
        cells = [f"{d[t]:+.2f}" if t in d else "-" for t in tasks]
        mean = f"{sum(d.values()) / len(d):+.2f}" if d else "-"
        speed = f"{ref.latency_ms / p.latency_ms:.2f}x"
        lines.append(
            f"| {p.name} | {p.file} | {p.size_mb:.1f} | {p.latency_ms:.2f} | {speed} | "
            + " | ".join(cells)
            + f" | {mean} |"
        )
    note = f"batch 1, {threads or 'all'} intra-op threads; drops in points of FP32's normalised score"
    return "\n".join(lines) + f"\n\n({note})"


def plot(results: list[Precision], path: Path) -> Path:
    """Scatter of normalised score (FP32 = 100) against latency, one colour per precision."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref = results[0]
    fig, ax = plt.subplots(figsize=(6, 4))
    for p in results:
        d = _drops(p, ref)
        mean = 100.0 - sum(d.values()) / len(d) if d else 100.0
        ax.scatter([p.latency_ms], [mean], s=80, label=f"{p.name} (mean)")
        for task, v in d.items() if p is not ref else ():
            ax.annotate(task, (p.latency_ms, 100.0 - v), fontsize=7, alpha=0.7)
            ax.scatter([p.latency_ms], [100.0 - v], marker="x", color="grey", s=20)
    ax.set_xlabel("ONNX Runtime CPU latency, batch 1 (ms)")
    ax.set_ylabel("normalised score (FP32 = 100)")
    ax.set_title("INT8 calibration: score vs latency")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def markdown(
    results: list[Precision], threads: int | None, settings: dict[str, object], extra: str = ""
) -> str:
    """The whole calib_report.md."""
    rows = "\n".join(f"- {k}: {v}" for k, v in settings.items())
    return (
        "# INT8 calibration report\n\n"
        f"{rows}\n\n## Accuracy and speed\n\n{speed_table(results, threads)}\n\n"
        f"## Metrics\n\n{metric_table(results)}\n\n![score vs latency](calib_report.png)\n"
        + (f"\n{extra}\n" if extra else "")
    )

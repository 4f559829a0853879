"""The merge report: markdown table of test metrics and normalised scores, and plots.

Plots: normalised validation score against alpha for every method, with and without head
re-alignment (the paper's collapse-and-recovery picture), and TAP against the validation score
(how well the cheap proxy ranks candidates).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simokit.cache import atomic_path
from simokit.pipeline.study_result import Row, StudyResult
from simokit.tasks import get_task
from simokit.tasks.score import Metrics, task_scores


def table(rows: list[Row], experts: Metrics) -> str:
    """Markdown table: one row per model; each task's metrics, per-task and mean normalised score."""
    tasks = list(experts)
    header = ["model", "hyper-parameters"]
    for t in tasks:
        header += [f"{t} {m}" for m in get_task(t).metrics][:3]
    header += [f"{t} norm." for t in tasks] + ["mean norm."]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    all_rows = [Row("experts", "-", {}, "-", "-", experts, 1.0), *rows]
    for row in all_rows:
        cells = [row.name, format_hparams(row.hparams)]
        for t in tasks:
            cells += [_fmt(m, row.metrics[t][m]) for m in list(get_task(t).metrics)[:3]]
        per_task = task_scores(row.metrics, experts)
        cells += [f"{per_task[t]:.3f}" for t in tasks] + [f"**{row.score:.3f}**"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_hparams(hp: dict[str, Any]) -> str:
    """k=v pairs; learned coefficient matrices are summarised by shape and mean."""
    parts = []
    for k, v in hp.items():
        if k == "coefficients" and isinstance(v, list) and v:
            flat = [x for row in v for x in row]
            parts.append(f"λ {len(v)}x{len(v[0])} learned (mean {sum(flat) / len(flat):.2f})")
        else:
            parts.append(f"{k}={v}")
    return ", ".join(parts) or "-"


def _fmt(metric: str, value: float) -> str:
    return f"{value:.3f}" if metric.endswith(("err", "rel")) else f"{value:.2f}"


def plot_alpha(result: StudyResult, path: Path) -> Path:
    """Normalised validation score vs alpha per method (one line per other hyper-parameter setting)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = sorted({c.method for c in result.candidates if "coefficients" not in c.hparams})
    fig, axes = plt.subplots(1, max(len(methods), 1), figsize=(5 * len(methods), 3.6), squeeze=False)
    for ax, method in zip(axes[0], methods, strict=True):
        groups: dict[str, list[tuple[float, float, float]]] = {}
        for c in result.candidates:
            if c.method != method:
                continue
            rest = ", ".join(f"{k}={v}" for k, v in c.hparams.items() if k != "alpha")
            groups.setdefault(rest, []).append(
                (float(c.hparams.get("alpha", 1.0)), c.val_score, c.val_score_realigned)
            )
        for rest, pts in groups.items():
            pts.sort()
            xs = [p[0] for p in pts]
            label = f" ({rest})" if rest else ""
            line = ax.plot(xs, [p[1] for p in pts], "o--", label=f"merged{label}")[0]
            ax.plot(xs, [p[2] for p in pts], "o-", color=line.get_color(), label=f"+ head re-align{label}")
        ax.axhline(1.0, color="gray", lw=0.8)
        ax.set_title(method)
        ax.set_xlabel("alpha")
        ax.set_ylabel("normalised score (val)")
        ax.legend(fontsize=6)
    return _save(fig, path)


def plot_tap(result: StudyResult, path: Path) -> Path:
    """TAP (lower = closer to the experts) against normalised validation score, per candidate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3.6))
    for method in sorted({c.method for c in result.candidates}):
        cs = [c for c in result.candidates if c.method == method]
        ax.scatter([c.tap for c in cs], [c.val_score for c in cs], label=method, s=14)
    ax.set_xlabel("TAP: feature distance / zero-shot distance")
    ax.set_ylabel("normalised score (val)")
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_learned(result: StudyResult, path: Path) -> Path | None:
    """AdaMerging: the learned coefficient per task and layer, and the training loss, per run."""
    runs = [c for c in result.candidates if "coefficients" in c.hparams]
    if not runs:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(runs), figsize=(4.8 * len(runs), 6.4), squeeze=False)
    tasks = list(result.expert_test)
    for col, cand in enumerate(runs):
        name = format_hparams({k: v for k, v in cand.hparams.items() if k != "coefficients"})
        ax = axes[0][col]
        for task, row in zip(tasks, cand.hparams["coefficients"], strict=False):
            ax.plot(range(len(row)), row, "o-", label=task)
        ax.set_title(f"λ per layer ({name})", fontsize=8)
        ax.set_xlabel("layer (0 = embeddings, last = final norm)")
        ax.legend(fontsize=7)
        losses = result.learned.get(name, {}).get("losses", [])
        axes[1][col].plot(losses, lw=0.8)
        axes[1][col].set_xlabel("iteration")
        axes[1][col].set_ylabel("normalised TAP loss")
    return _save(fig, path)


def _save(fig: object, path: Path) -> Path:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
    return path


def spearman(xs: list[float], ys: list[float]) -> float:
    """Spearman rank correlation (no tie correction; enough to summarise TAP vs eval ranking)."""

    def ranks(v: list[float]) -> list[float]:
        order = sorted(range(len(v)), key=lambda i: v[i])
        r = [0.0] * len(v)
        for rank, i in enumerate(order):
            r[i] = float(rank)
        return r

    rx, ry = ranks(xs), ranks(ys)
    n = len(xs)
    if n < 2:
        return float("nan")
    mx, my = sum(rx) / n, sum(ry) / n
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    vx = sum((a - mx) ** 2 for a in rx) ** 0.5
    vy = sum((b - my) ** 2 for b in ry) ** 0.5
    return cov / (vx * vy) if vx and vy else float("nan")

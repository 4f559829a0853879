"""Normalised multi-task score: each metric relative to the task's expert, as in the SIMO paper.

A higher-is-better metric scores m / m_expert, a lower-is-better one m_expert / m, so 1.0 means
"as good as the expert" in both directions and the paper's retention figures (task arithmetic keeps
55.5% of depth = 0.2314 / 0.4171) come out directly.
"""

from __future__ import annotations

from simokit.errors import ConfigError
from simokit.tasks.spec import get_task

Metrics = dict[str, dict[str, float]]


def metric_ratio(value: float, reference: float, higher_is_better: bool) -> float:
    """Return the direction-aware ratio of `value` to the expert's `reference` (1.0 = equal)."""
    if higher_is_better:
        return value / reference if reference > 0 else 0.0
    return reference / value if value > 0 else (1.0 if reference <= 0 else float("inf"))


def task_scores(metrics: Metrics, experts: Metrics) -> dict[str, float]:
    """Return each task's normalised score: the mean ratio over the task's metrics."""
    scores: dict[str, float] = {}
    for task, values in metrics.items():
        if task not in experts:
            raise ConfigError(f"no expert reference metrics for task '{task}'")
        spec = get_task(task)
        ratios = [
            metric_ratio(values[m], experts[task][m], higher)
            for m, higher in spec.metrics.items()
            if m in values and m in experts[task]
        ]
        scores[task] = sum(ratios) / len(ratios) if ratios else 0.0
    return scores


def normalized_score(metrics: Metrics, experts: Metrics) -> float:
    """Return the mean of the per-task normalised scores (1.0 = every task matches its expert)."""
    scores = task_scores(metrics, experts)
    return sum(scores.values()) / len(scores) if scores else 0.0

"""Normalised score: direction-aware ratios against the expert, as in the SIMO paper."""

import pytest

from simokit.errors import ConfigError
from simokit.tasks.score import metric_ratio, normalized_score, task_scores


def test_paper_retention_figures() -> None:
    # SIMO NYUv2, DINOv2-B linear heads: task arithmetic vs experts.
    assert metric_ratio(65.78, 70.79, True) == pytest.approx(0.929, abs=1e-3)
    assert metric_ratio(0.4171, 0.2314, False) == pytest.approx(0.555, abs=1e-3)
    assert metric_ratio(26.13, 18.02, False) == pytest.approx(0.690, abs=1e-3)


def test_task_and_overall_score() -> None:
    experts = {"seg": {"miou": 80.0, "pix_acc": 90.0}, "depth": {"abs_err": 0.2}}
    merged = {"seg": {"miou": 60.0, "pix_acc": 90.0}, "depth": {"abs_err": 0.4}}
    scores = task_scores(merged, experts)
    assert scores == {"seg": pytest.approx(0.875), "depth": pytest.approx(0.5)}
    assert normalized_score(merged, experts) == pytest.approx(0.6875)
    assert normalized_score(experts, experts) == pytest.approx(1.0)


def test_missing_expert_reference() -> None:
    with pytest.raises(ConfigError, match="normal"):
        task_scores({"normal": {"mean_angle": 20.0}}, {})

"""relative_depth: AbsRel and delta1 after per-image least-squares scale-and-shift alignment, and the
scale-and-shift-invariant loss, on hand-made arrays whose values are worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from simokit.runtime.overlay import colorize_depth, colorize_disparity
from simokit.tasks.losses import task_loss
from simokit.tasks.metrics import AffineDepthMetric, make_metric

# One row of 5 pixels; the last has no label (0) and a wild prediction that must not enter the fit.
TARGET = np.array([[[1.0, 2.0, 2.0, 4.0, 0.0]]])
PRED = np.array([[[1.0, 2.0, 3.0, 4.0, 50.0]]])


def test_an_affine_map_of_the_target_scores_perfectly() -> None:
    rng = np.random.default_rng(0)
    target = rng.uniform(0.1, 2.0, (3, 1, 6, 7))
    pred = np.stack([s * t + b for s, b, t in zip((0.5, 3.0, 20.0), (-0.04, 1.0, -1.5), target, strict=True)])
    metric = make_metric("relative_depth")
    assert isinstance(metric, AffineDepthMetric)
    metric.update(pred, target)
    values = metric.compute()
    assert values["abs_rel"] == pytest.approx(0.0, abs=1e-9) and values["delta1"] == pytest.approx(100.0)
    assert float(task_loss("relative_depth", torch.from_numpy(pred), torch.from_numpy(target))) < 1e-9


def test_the_metric_equals_its_formula() -> None:
    # Fit over the 4 labelled pixels: scale = cov(p, t) / var(p) = 4.5 / 5 = 0.9,
    # shift = 2.25 - 0.9 * 2.5 = 0, aligned [0.9, 1.8, 2.7, 3.6]: relative errors [0.1, 0.1, 0.35, 0.1],
    # ratios < 1.25 for 3 of 4.
    metric = AffineDepthMetric()
    metric.update(PRED, TARGET)
    assert metric.compute() == pytest.approx({"abs_rel": 0.1625, "delta1": 75.0})
    # Any affine map of the prediction aligns to the same values, so the totals double.
    metric.update(10.0 * PRED + 3.0, TARGET)
    assert metric.compute() == pytest.approx({"abs_rel": 0.1625, "delta1": 75.0})
    # Each image is aligned on its own: an exact affine map of the target adds 4 perfect pixels.
    metric.update(np.where(TARGET > 0, 10.0 * TARGET + 3.0, -9.0), TARGET)
    assert metric.compute() == pytest.approx({"abs_rel": 2 * 0.65 / 12, "delta1": 100.0 * 10 / 12})


def test_the_loss_equals_its_formula() -> None:
    # Residuals |0.9 p - t| = [0.1, 0.2, 0.7, 0.4], mean 0.35, over the target's mean 2.25.
    loss = task_loss("relative_depth", torch.tensor(PRED[:, None]), torch.tensor(TARGET[:, None]))
    assert float(loss) == pytest.approx(0.35 / 2.25, rel=1e-9)
    pred = torch.tensor(PRED[:, None], requires_grad=True)
    task_loss("relative_depth", pred, torch.tensor(TARGET[:, None])).backward()
    assert pred.grad is not None and float(pred.grad[..., -1].abs().max()) == 0.0  # the unlabelled pixel


def test_disparity_draws_as_depth_of_its_inverse() -> None:
    disparity = np.linspace(0.02, 2.0, 30, dtype=np.float32).reshape(5, 6)
    np.testing.assert_array_equal(
        colorize_disparity(disparity, 0.5, 40.0), colorize_depth(1.0 / disparity, 0.5, 40.0)
    )
    scaled = colorize_disparity(100.0 * disparity + 7.0)  # unknown scale and shift: percentiles
    np.testing.assert_array_equal(scaled, colorize_disparity(disparity))

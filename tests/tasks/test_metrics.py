"""Metrics against hand-computed cases."""

import numpy as np
import pytest

from simokit.errors import ShapeError
from simokit.tasks.metrics import DepthMetric, L1Metric, NormalMetric, SegMetric, make_metric


def test_seg_miou_and_pixel_accuracy_by_hand() -> None:
    m = SegMetric(num_classes=3)
    pred = np.array([[[0, 1], [1, 1]]])
    target = np.array([[[0, 1], [0, 255]]])
    m.update(pred, target)
    out = m.compute()
    # class 0: tp 1, union 2; class 1: tp 1, union 2; class 2 absent everywhere -> skipped.
    assert out["miou"] == pytest.approx(50.0)
    assert out["pix_acc"] == pytest.approx(200.0 / 3.0)


def test_seg_accepts_logits_and_accumulates() -> None:
    m = SegMetric(num_classes=2)
    logits = np.zeros((1, 2, 1, 2))
    logits[0, 1, 0, 1] = 5.0  # argmax: [[0, 1]]
    m.update(logits, np.array([[[0, 1]]]))
    m.update(np.array([[[1, 1]]]), np.array([[[0, 1]]]))
    # confusion: t0->p0 once, t0->p1 once, t1->p1 twice
    np.testing.assert_array_equal(m.confusion, [[1, 1], [0, 2]])
    assert m.compute()["miou"] == pytest.approx(100.0 * (1 / 2 + 2 / 3) / 2)


def test_depth_by_hand_and_invalid_pixels_skipped() -> None:
    m = DepthMetric()
    m.update(np.array([[[1.0, 2.0, 7.0]]]), np.array([[[2.0, 2.0, 0.0]]]))
    out = m.compute()
    assert out["abs_err"] == pytest.approx(0.5)
    assert out["abs_rel"] == pytest.approx(0.25)
    assert out["delta1"] == pytest.approx(50.0)


def test_normal_angles_by_hand() -> None:
    pred = np.array([[1, 0, 0], [0, 0, 1], [1, 0, 1], [0, 0, 1]], dtype=np.float32).T.reshape(1, 3, 1, 4)
    target = np.array([[0, 0, 1], [0, 0, 1], [0, 0, 1], [0, 0, 0]], dtype=np.float32).T.reshape(1, 3, 1, 4)
    m = NormalMetric()
    m.update(pred, target)
    out = m.compute()
    assert m.n == 3  # the zero-length target is skipped
    assert out["mean_angle"] == pytest.approx(45.0, abs=1e-4)
    assert out["median_angle"] == pytest.approx(45.0, abs=0.01)
    for key in ("within_11", "within_22", "within_30"):
        assert out[key] == pytest.approx(100.0 / 3.0)


def test_l1_and_factory() -> None:
    m = make_metric("edge")
    assert isinstance(m, L1Metric)
    m.update(np.array([[[0.0, 1.0]]]), np.array([[[0.5, 0.5]]]))
    assert m.compute()["l1"] == pytest.approx(0.5)
    assert isinstance(make_metric("seg", num_classes=4), SegMetric)


def test_shape_mismatch_is_named_error() -> None:
    with pytest.raises(ShapeError, match="depth"):
        DepthMetric().update(np.zeros((1, 2, 2)), np.zeros((1, 3, 3)))

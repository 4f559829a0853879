"""Streaming per-task metrics: accumulate over batches, read once at the end.

Every accumulator keeps O(1) state (a confusion matrix, sums, an angle histogram), so evaluating
thousands of images costs no more memory than evaluating ten.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from simokit.errors import ConfigError, ShapeError
from simokit.tasks.spec import IGNORE_INDEX, TaskSpec, get_task

_ANGLE_BIN = 0.01  # degrees; the median is exact to this resolution
_ALIGNED_EPS = 1e-6  # an aligned inverse depth at or below 0 is a point at infinity; keep ratios finite


class SegMetric:
    """Mean IoU and pixel accuracy from a confusion matrix; label IGNORE_INDEX is skipped."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.confusion = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        """Add a batch: pred (B, H, W) class ids or (B, C, H, W) logits; target (B, H, W) ids."""
        if pred.ndim == 4:
            pred = pred.argmax(axis=1)
        _same_shape("seg", pred, target)
        valid = target != IGNORE_INDEX
        t = target[valid].astype(np.int64)
        p = pred[valid].astype(np.int64)
        idx = t * self.num_classes + p
        self.confusion += np.bincount(idx, minlength=self.num_classes**2).reshape(
            self.num_classes, self.num_classes
        )

    def compute(self) -> dict[str, float]:
        """Return {'miou', 'pix_acc'} in percent; classes absent from both pred and target are skipped."""
        cm = self.confusion
        tp = np.diag(cm).astype(np.float64)
        union = cm.sum(0) + cm.sum(1) - tp
        present = union > 0
        miou = float((tp[present] / union[present]).mean()) if present.any() else 0.0
        total = cm.sum()
        pix = float(tp.sum() / total) if total else 0.0
        return {"miou": 100.0 * miou, "pix_acc": 100.0 * pix}


class DepthMetric:
    """Absolute error (m), absolute relative error and delta<1.25 (%) over pixels with depth > 0."""

    def __init__(self) -> None:
        self.n = 0
        self.abs_err = 0.0
        self.abs_rel = 0.0
        self.delta1 = 0

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        """Add a batch: pred and target (B, H, W) or (B, 1, H, W), metres."""
        pred, target = _squeeze_channel(pred), _squeeze_channel(target)
        _same_shape("depth", pred, target)
        valid = target > 0
        p = pred[valid].astype(np.float64)
        t = target[valid].astype(np.float64)
        err = np.abs(p - t)
        ratio = np.maximum(p / t, t / np.maximum(p, 1e-12))
        self.n += t.size
        self.abs_err += float(err.sum())
        self.abs_rel += float((err / t).sum())
        self.delta1 += int((ratio < 1.25).sum())

    def compute(self) -> dict[str, float]:
        """Return {'abs_err', 'abs_rel', 'delta1'} (delta1 in percent)."""
        n = max(self.n, 1)
        return {"abs_err": self.abs_err / n, "abs_rel": self.abs_rel / n, "delta1": 100.0 * self.delta1 / n}


class NormalMetric:
    """Angle error in degrees (mean, median) and % of pixels within 11.25/22.5/30 degrees."""

    def __init__(self) -> None:
        self.n = 0
        self.total = 0.0
        self.hist = np.zeros(round(180.0 / _ANGLE_BIN) + 1, dtype=np.int64)

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        """Add a batch: pred and target (B, 3, H, W); target pixels of zero length are skipped."""
        _same_shape("normal", pred, target)
        if pred.ndim != 4 or pred.shape[1] != 3:
            raise ShapeError(f"normal: expected (B, 3, H, W), got {pred.shape}")
        t_norm = np.linalg.norm(target, axis=1)
        valid = t_norm > 0.5
        p = pred / np.maximum(np.linalg.norm(pred, axis=1, keepdims=True), 1e-12)
        t = target / np.maximum(t_norm[:, None], 1e-12)
        cos = np.clip((p * t).sum(axis=1)[valid], -1.0, 1.0)
        angles = np.degrees(np.arccos(cos.astype(np.float64)))
        self.n += angles.size
        self.total += float(angles.sum())
        bins = np.minimum(np.round(angles / _ANGLE_BIN).astype(np.int64), self.hist.size - 1)
        self.hist += np.bincount(bins, minlength=self.hist.size)

    def compute(self) -> dict[str, float]:
        """Return {'mean_angle', 'median_angle', 'within_11', 'within_22', 'within_30'}."""
        n = max(self.n, 1)
        cdf = np.cumsum(self.hist)
        median = float(np.searchsorted(cdf, (self.n + 1) / 2.0) * _ANGLE_BIN) if self.n else 0.0

        def within(deg: float) -> float:
            return 100.0 * float(self.hist[: int(np.floor(deg / _ANGLE_BIN + 1e-9)) + 1].sum()) / n

        return {
            "mean_angle": self.total / n,
            "median_angle": median,
            "within_11": within(11.25),
            "within_22": within(22.5),
            "within_30": within(30.0),
        }


class L1Metric:
    """Mean absolute error for dense scalar maps such as edges and shading."""

    def __init__(self) -> None:
        self.n = 0
        self.total = 0.0

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        """Add a batch: pred and target (B, H, W) or (B, 1, H, W)."""
        pred, target = _squeeze_channel(pred), _squeeze_channel(target)
        _same_shape("l1", pred, target)
        self.n += target.size
        self.total += float(np.abs(pred.astype(np.float64) - target).sum())

    def compute(self) -> dict[str, float]:
        """Return {'l1'}."""
        return {"l1": self.total / max(self.n, 1)}


class AffineDepthMetric:
    """AbsRel and delta<1.25 (%) of inverse depth after a per-image scale-and-shift alignment.

    Affine-invariant predictions (e.g. Depth Anything's relative output) are only defined up to a scale
    and a shift, so each image's prediction p is first mapped to s p + b, with (s, b) the least-squares
    fit to the target t over its valid pixels (t > 0). The aligned a = max(s p + b, eps) then scores
    abs_rel = mean |a - t| / t and delta1 = share of max(a / t, t / a) < 1.25, the same share as for the
    depths 1 / a and 1 / t.
    """

    def __init__(self) -> None:
        self.n = 0
        self.abs_rel = 0.0
        self.delta1 = 0

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        """Add a batch: pred and target (B, H, W) or (B, 1, H, W), target inverse depth, 0 = no label."""
        pred, target = _squeeze_channel(pred), _squeeze_channel(target)
        _same_shape("relative_depth", pred, target)
        for p_img, t_img in zip(pred, target, strict=True):
            valid = t_img > 0
            t = t_img[valid].astype(np.float64)
            if t.size == 0:
                continue
            p = p_img[valid].astype(np.float64)
            design = np.stack([p, np.ones_like(p)], axis=1)
            (scale, shift), *_ = np.linalg.lstsq(design, t, rcond=None)
            aligned = np.maximum(scale * p + shift, _ALIGNED_EPS)
            self.n += t.size
            self.abs_rel += float((np.abs(aligned - t) / t).sum())
            self.delta1 += int((np.maximum(aligned / t, t / aligned) < 1.25).sum())

    def compute(self) -> dict[str, float]:
        """Return {'abs_rel', 'delta1'} (delta1 in percent)."""
        n = max(self.n, 1)
        return {"abs_rel": self.abs_rel / n, "delta1": 100.0 * self.delta1 / n}


Metric = SegMetric | DepthMetric | NormalMetric | L1Metric | AffineDepthMetric

# Metric kinds named by the task table; each builds a fresh accumulator from the task and a class count.
METRICS: dict[str, Callable[[TaskSpec, int | None], Metric]] = {
    "confusion": lambda spec, num_classes: SegMetric(num_classes or spec.out_channels),
    "depth": lambda spec, num_classes: DepthMetric(),
    "angle": lambda spec, num_classes: NormalMetric(),
    "l1": lambda spec, num_classes: L1Metric(),
    "affine_depth": lambda spec, num_classes: AffineDepthMetric(),
}


def make_metric(task: str, num_classes: int | None = None) -> Metric:
    """Return a fresh accumulator of `task`'s metric kind (class-count kinds use `num_classes`)."""
    spec = get_task(task)
    try:
        factory = METRICS[spec.metric]
    except KeyError:
        raise ConfigError(
            f"task '{task}': unknown metric kind '{spec.metric}'; choose from {', '.join(METRICS)}"
        ) from None
    return factory(spec, num_classes)


def _squeeze_channel(a: np.ndarray) -> np.ndarray:
    return a[:, 0] if a.ndim == 4 and a.shape[1] == 1 else a


def _same_shape(task: str, pred: np.ndarray, target: np.ndarray) -> None:
    if pred.shape != target.shape:
        raise ShapeError(f"{task}: prediction shape {pred.shape} differs from target shape {target.shape}")

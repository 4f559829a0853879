"""Shared pieces of the calibration tests: the tiny model and synthetic frames."""

from __future__ import annotations

import numpy as np
from tiny_models import tiny_model as shared_tiny_model

from simokit.models import MultiTaskModel

TASKS = ("seg", "depth", "normal")
SIZE = 56


def tiny_model() -> MultiTaskModel:
    """Seeded nano encoder with one linear head per task."""
    return shared_tiny_model(seed=3)


def frames(n: int, h: int = SIZE, w: int = SIZE, seed: int = 0) -> np.ndarray:
    """Smooth random RGB frames (gradients plus noise), uint8 (n, h, w, 3)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([xx, yy, 1 - xx], -1)[None] * rng.uniform(80, 255, (n, 1, 1, 3))
    return np.clip(base + rng.normal(0, 12, (n, h, w, 3)), 0, 255).astype(np.uint8)

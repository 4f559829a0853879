"""Shared pieces of the calibration tests: the tiny model and synthetic frames."""

from __future__ import annotations

import numpy as np
import torch

from simokit.models import HeadConfig, MultiTaskModel, build_encoder, build_head

TASKS = ("seg", "depth", "normal")
SIZE = 56


def tiny_model() -> MultiTaskModel:
    """Seeded nano encoder with one linear head per task."""
    torch.manual_seed(3)
    heads = {
        "seg": build_head(HeadConfig("linear", 11, "none", batch_norm=True), 48),
        "depth": build_head(HeadConfig("linear", 1, "exp"), 48),
        "normal": build_head(HeadConfig("linear", 3, "normalize"), 48),
    }
    return MultiTaskModel(build_encoder("vitnano14"), heads).eval()


def frames(n: int, h: int = SIZE, w: int = SIZE, seed: int = 0) -> np.ndarray:
    """Smooth random RGB frames (gradients plus noise), uint8 (n, h, w, 3)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([xx, yy, 1 - xx], -1)[None] * rng.uniform(80, 255, (n, 1, 1, 3))
    return np.clip(base + rng.normal(0, 12, (n, h, w, 3)), 0, 255).astype(np.uint8)

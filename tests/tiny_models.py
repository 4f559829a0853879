"""The tiny multi-task model the export, runtime and calibration tests share."""

from __future__ import annotations

import torch

from simokit.models import HeadConfig, MultiTaskModel, build_encoder, build_head


def tiny_model(seed: int = 0, classes: int = 11, seg_batch_norm: bool = True) -> MultiTaskModel:
    """Seeded vitnano14 (48 wide, 2 blocks, 56 px): linear seg, depth (exp) and normal heads, eval mode."""
    torch.manual_seed(seed)
    heads = {
        "seg": build_head(HeadConfig("linear", classes, "none", batch_norm=seg_batch_norm), 48),
        "depth": build_head(HeadConfig("linear", 1, "exp"), 48),
        "normal": build_head(HeadConfig("linear", 3, "normalize"), 48),
    }
    return MultiTaskModel(build_encoder("vitnano14"), heads).eval()

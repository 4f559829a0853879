"""The tiny multi-task model the export, runtime and calibration tests share."""

from __future__ import annotations

import torch

from simokit.models import HeadConfig, MultiTaskModel, build_encoder, build_head
from simokit.models.vit import DinoVisionTransformer, VitConfig


def tiny_model(seed: int = 0, classes: int = 11, seg_batch_norm: bool = True) -> MultiTaskModel:
    """Seeded vitnano14 (48 wide, 2 blocks, 56 px): linear seg, depth (exp) and normal heads, eval mode."""
    torch.manual_seed(seed)
    heads = {
        "seg": build_head(HeadConfig("linear", classes, "none", batch_norm=seg_batch_norm), 48),
        "depth": build_head(HeadConfig("linear", 1, "exp"), 48),
        "normal": build_head(HeadConfig("linear", 3, "normalize"), 48),
    }
    return MultiTaskModel(build_encoder("vitnano14"), heads).eval()


def randomized_encoder(cfg: VitConfig, seed: int = 0, noise: float = 0.1) -> DinoVisionTransformer:
    """An encoder whose every parameter (LayerScale, tokens, biases) holds non-trivial random values."""
    torch.manual_seed(seed)
    model = build_encoder(cfg)
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.add_(noise * torch.randn_like(param))
            if name.endswith(".gamma"):
                param.uniform_(0.2, 1.5)
    return model.eval()

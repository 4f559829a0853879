"""The DINOv2-compatible ViT encoder: config (VitConfig), encoder (the module) and named variants."""

from __future__ import annotations

from simokit.models.layers import interpolate_pos_embed
from simokit.models.vit.config import VitConfig
from simokit.models.vit.encoder import DinoVisionTransformer, VitFeatures
from simokit.models.vit.variants import (
    VARIANTS,
    build_encoder,
    vitb14,
    vitb14_reg,
    vitg14,
    vitg14_reg,
    vitl14,
    vitl14_reg,
    vitmicro14,
    vitnano14,
    vits14,
    vits14_reg,
)

__all__ = [
    "VARIANTS",
    "DinoVisionTransformer",
    "VitConfig",
    "VitFeatures",
    "build_encoder",
    "interpolate_pos_embed",
    "vitb14",
    "vitb14_reg",
    "vitg14",
    "vitg14_reg",
    "vitl14",
    "vitl14_reg",
    "vitmicro14",
    "vitnano14",
    "vits14",
    "vits14_reg",
]

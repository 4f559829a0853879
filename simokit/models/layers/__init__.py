"""Building blocks of the DINOv2-compatible ViT, one concept per module."""

from __future__ import annotations

from simokit.models.layers.attention import Attention
from simokit.models.layers.block import FFN_KINDS, Block
from simokit.models.layers.layer_scale import LayerScale
from simokit.models.layers.mlp import Mlp, SwiGLUFFN, swiglu_hidden_features
from simokit.models.layers.patch_embed import PatchEmbed, check_image_shape, nearest_valid_sizes
from simokit.models.layers.pos_embed import interpolate_pos_embed, traceable_pos_embed

__all__ = [
    "FFN_KINDS",
    "Attention",
    "Block",
    "LayerScale",
    "Mlp",
    "PatchEmbed",
    "SwiGLUFFN",
    "check_image_shape",
    "interpolate_pos_embed",
    "nearest_valid_sizes",
    "swiglu_hidden_features",
    "traceable_pos_embed",
]

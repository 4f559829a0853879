"""Models: the DINOv2-compatible ViT encoder, weight converters, task heads and the multi-task model."""

from __future__ import annotations

from simokit.models.convert import (
    convert_hf_dinov2,
    detect_format,
    load_encoder_weights,
    to_official,
    vit_config_from_hf,
)
from simokit.models.heads import (
    DenseHead,
    DPTHead,
    FeatureConsumer,
    HeadConfig,
    LinearHead,
    apply_activation,
    build_head,
    fold_linear_map,
)
from simokit.models.multitask import MultiTaskModel
from simokit.models.vit import (
    VARIANTS,
    DinoVisionTransformer,
    VitConfig,
    VitFeatures,
    build_encoder,
    interpolate_pos_embed,
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
    "DPTHead",
    "DenseHead",
    "DinoVisionTransformer",
    "FeatureConsumer",
    "HeadConfig",
    "LinearHead",
    "MultiTaskModel",
    "VitConfig",
    "VitFeatures",
    "apply_activation",
    "build_encoder",
    "build_head",
    "convert_hf_dinov2",
    "detect_format",
    "fold_linear_map",
    "interpolate_pos_embed",
    "load_encoder_weights",
    "to_official",
    "vit_config_from_hf",
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

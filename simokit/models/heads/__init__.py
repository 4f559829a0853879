"""Dense task heads on ViT features, and folding a linear feature map into their first linear layers.

One concept per module: config (HeadConfig), activation, base (DenseHead), one module per head
kind (linear, dpt, linear_depth), registry (kind -> class, build_head) and fold (FeatureConsumer,
fold_linear_map).
"""

from __future__ import annotations

from simokit.models.heads.activation import ACTIVATIONS, apply_activation
from simokit.models.heads.base import DenseHead, Features
from simokit.models.heads.config import DPT_NUM_LAYERS, HEAD_KINDS, HeadConfig
from simokit.models.heads.dpt import DPTHead
from simokit.models.heads.fold import FeatureConsumer, fold_linear_map
from simokit.models.heads.linear import LinearHead
from simokit.models.heads.linear_depth import LinearDepthHead
from simokit.models.heads.registry import HEADS, build_head

__all__ = [
    "ACTIVATIONS",
    "DPT_NUM_LAYERS",
    "HEADS",
    "HEAD_KINDS",
    "DPTHead",
    "DenseHead",
    "FeatureConsumer",
    "Features",
    "HeadConfig",
    "LinearDepthHead",
    "LinearHead",
    "apply_activation",
    "build_head",
    "fold_linear_map",
]

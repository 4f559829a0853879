"""A head's output activation over channels: none, softplus, exp, normalize or sigmoid."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

ACTIVATIONS = ("none", "softplus", "exp", "normalize", "sigmoid")
_EXP_CLAMP = 12.0  # exp(12) m is far beyond any scene; the clamp keeps FP16 exports finite
_NORMALIZE_EPS = 1e-6


def apply_activation(x: Tensor, activation: str) -> Tensor:
    """Apply a head's output activation over channels: (B, C, H, W) -> (B, C, H, W)."""
    if activation == "softplus":
        return F.softplus(x)
    if activation == "exp":
        # Log-space output: a linear layer moves log-depth by O(1) per unit, metric depth spans 1..60 m.
        return torch.exp(x.clamp(-_EXP_CLAMP, _EXP_CLAMP))
    if activation == "sigmoid":
        return torch.sigmoid(x)
    if activation == "normalize":
        return F.normalize(x, dim=1, eps=_NORMALIZE_EPS)
    return x

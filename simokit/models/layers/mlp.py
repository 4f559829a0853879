"""Token-wise feed-forward networks: the GELU MLP and DINOv2's fused SwiGLU."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class Mlp(nn.Module):
    """Two-layer GELU MLP: (..., D) -> (..., D_out)."""

    def __init__(self, in_features: int, hidden_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features, bias=bias)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, out_features, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        """Apply fc1 -> GELU -> fc2: (..., D) -> (..., D_out)."""
        return self.fc2(self.act(self.fc1(x)))


def swiglu_hidden_features(hidden_features: int) -> int:
    """Hidden width of the fused SwiGLU for a nominal MLP width: two thirds, rounded up to a multiple of 8."""
    # two thirds keeps the parameter count of a GELU MLP with the same nominal width (3 matrices vs 2)
    return (int(hidden_features * 2 / 3) + 7) // 8 * 8


class SwiGLUFFN(nn.Module):
    """SwiGLU feed-forward with one fused input matrix `w12` (gate rows first): (..., D) -> (..., D_out)."""

    def __init__(self, in_features: int, hidden_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        hidden = swiglu_hidden_features(hidden_features)
        self.w12 = nn.Linear(in_features, 2 * hidden, bias=bias)
        self.w3 = nn.Linear(hidden, out_features, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        """Apply w3(silu(gate) * value) with gate, value = split(w12(x)): (..., D) -> (..., D_out)."""
        gate, value = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(gate) * value)

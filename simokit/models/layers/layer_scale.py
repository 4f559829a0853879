"""Per-channel learnable residual-branch scaling (CaiT LayerScale)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class LayerScale(nn.Module):
    """Multiply each channel by a learned factor `gamma`: (..., D) -> (..., D)."""

    def __init__(self, dim: int, init_values: float = 1e-5) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_values)))

    def forward(self, x: Tensor) -> Tensor:
        """Scale the last dimension: (..., D) -> (..., D)."""
        return x * self.gamma

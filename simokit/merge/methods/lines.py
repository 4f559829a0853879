"""`lines` — LiNeS, Layer-increasing Network Scaling (Wang et al., ICLR 2025), on task arithmetic.

θ = θ0 + λ(ℓ) Σ_t τ_t with λ(ℓ) = α + β ℓ/L, ℓ = block_index(key) (0 embeddings, i+1 block i,
depth+1 final norm) and L = depth + 1: shallow layers stay near the base, deep ones take more of
the update. α defaults to 1/T (the paper's multi-task setting, where for a summed τ_MTL its code
uses α = (‖Σ τ_t‖₁/‖τ_MTL‖₁)/T = 1/T) and β, the only tuned value, to 0.5 of its grid 0.1..1.0.
The official code scales block i by α + β·i/(depth−1) and all non-block tensors by α; we use
the index above, which also gives the final norm the deepest scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from simokit.merge.methods.base import MergeMethod, MergeParams, check_number, steps
from simokit.merge.registry import register
from simokit.merge.task_vectors import block_index


@dataclass(frozen=True)
class LinesParams(MergeParams):
    """alpha: scale of the shallowest layer (None = 1/T); beta: extra scale reached by the deepest."""

    alpha: float | None = None
    beta: float = 0.5

    def __post_init__(self) -> None:
        if self.alpha is not None:
            check_number("lines", "alpha", self.alpha, 0.0, 10.0)
        check_number("lines", "beta", self.beta, 0.0, 10.0)


@register
class Lines(MergeMethod[LinesParams]):
    """θ = θ0 + (α + β ℓ/L) Σ_t τ_t."""

    name = "lines"
    params_type = LinesParams

    @classmethod
    def grid(cls) -> list[dict[str, Any]]:
        """β ∈ {0.1, …, 1.0} with α = 1/T (the paper tunes β only)."""
        return [{"beta": b} for b in steps(0.1, 1.0, 0.1)]

    def scale(self, key: str) -> float:
        """λ(ℓ) for the layer holding `key`."""
        alpha = self.params.alpha if self.params.alpha is not None else 1.0 / self.setup.num_experts
        depth = self.setup.depth
        return alpha + self.params.beta * block_index(key, depth) / (depth + 1)

    def merge_tensor(self, key: str, taus: list[Tensor]) -> Tensor:
        """λ(ℓ) Σ_t τ_t."""
        return self.scale(key) * torch.stack(taus).sum(dim=0)

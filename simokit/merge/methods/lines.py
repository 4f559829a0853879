"""`lines` — LiNeS, Layer-increasing Network Scaling (Wang et al., ICLR 2025), on task arithmetic.

θ = θ0 + λ(key) Σ_t τ_t, as the authors' `LiNeS_scaling` (wang-kee/LiNeS) computes it: block i of
L blocks is scaled by α + β·i/(L−1) (by α when L = 1), and every tensor outside the blocks
(patch and position embeddings, CLS/register tokens, the final norm) by α. Shallow blocks stay near
the base, deep ones take more of the update: block 0 is at α, the last block at α + β.
α defaults to 1/T (the paper's multi-task setting, where for a summed τ_MTL its code uses
α = (‖Σ τ_t‖₁/‖τ_MTL‖₁)/T = 1/T) and β, the only tuned value, to 0.5 of its grid 0.1..1.0.
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
    """θ = θ0 + λ(key) Σ_t τ_t, λ = α + β·i/(L−1) in block i of L, α elsewhere."""

    name = "lines"
    params_type = LinesParams

    @classmethod
    def grid(cls) -> list[dict[str, Any]]:
        """β ∈ {0.1, …, 1.0} with α = 1/T (the paper tunes β only)."""
        return [{"beta": b} for b in steps(0.1, 1.0, 0.1)]

    def scale(self, key: str) -> float:
        """λ for the tensor `key`: α + β·i/(L−1) inside block i of L, α outside the blocks."""
        alpha = self.params.alpha if self.params.alpha is not None else 1.0 / self.setup.num_experts
        depth = self.setup.depth
        index = block_index(key, depth)  # 0 embeddings, i + 1 for block i, depth + 1 final norm
        if not 1 <= index <= depth:
            return alpha
        return alpha + self.params.beta * (index - 1) / max(depth - 1, 1)

    def merge_tensor(self, key: str, taus: list[Tensor]) -> Tensor:
        """λ(key) Σ_t τ_t."""
        return self.scale(key) * torch.stack(taus).sum(dim=0)

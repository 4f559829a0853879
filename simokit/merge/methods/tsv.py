"""`tsv` — TSV-Merge (Gargiulo et al., CVPR 2025, "Task Singular Vectors").

Per 2-D weight: keep each task's top k = max(1, ⌊min(r, c)/T⌋) singular triplets (the code's
`sv_reduction = 1/T`), concatenate U = [U_1 … U_T] (r × Tk), Σ = [σ_1 … σ_T], V = [V_1 … V_T],
orthogonalise U and V by their polar factors (U⊥ = P Qᵀ from U = P S Qᵀ), and merge
Δ = U⊥ diag(Σ) V⊥ᵀ; θ = θ0 + α Δ with the code's α = 1. Tensors that are not matrices take the
mean of τ_t, scaled by α as well. When T·k > min(r, c) (tiny matrices only) the polar factor is
the closest, not an exact, orthonormal basis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from simokit.merge.methods.base import MergeMethod, MergeParams, check_number
from simokit.merge.registry import register
from simokit.merge.task_vectors import is_matrix, orthogonalize, truncated_svd


def task_singular_merge(taus: list[Tensor]) -> Tensor:
    """Δ = U⊥ diag(Σ) V⊥ᵀ from each (r×c) task matrix's top-(min(r,c)/T) singular triplets."""
    rank = max(1, min(taus[0].shape) // len(taus))
    parts = [truncated_svd(t, rank) for t in taus]
    u = torch.cat([p[0] for p in parts], dim=1)
    s = torch.cat([p[1] for p in parts])
    vh = torch.cat([p[2] for p in parts], dim=0)
    return (orthogonalize(u) * s) @ orthogonalize(vh)


@dataclass(frozen=True)
class TsvParams(MergeParams):
    """alpha: scaling of the merged update (the paper uses 1.0, no tuning)."""

    alpha: float = 1.0

    def __post_init__(self) -> None:
        check_number("tsv", "alpha", self.alpha, 0.0, 10.0)


@register
class Tsv(MergeMethod[TsvParams]):
    """θ = θ0 + α TSV(τ_1..τ_T) for matrices, θ0 + α mean(τ_t) otherwise."""

    name = "tsv"
    params_type = TsvParams

    @classmethod
    def grid(cls) -> list[dict[str, Any]]:
        """α ∈ {0.5, 0.75, 1, 1.25, 1.5}."""
        return [{"alpha": a} for a in (0.5, 0.75, 1.0, 1.25, 1.5)]

    def merge_tensor(self, key: str, taus: list[Tensor]) -> Tensor:
        """α · (orthogonalised low-rank sum for matrices, mean otherwise)."""
        merged = task_singular_merge(taus) if is_matrix(taus[0]) else torch.stack(taus).mean(dim=0)
        return self.params.alpha * merged

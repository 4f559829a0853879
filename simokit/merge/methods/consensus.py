"""`consensus` — Consensus Merging (Wang et al., ICML 2024), as in the SIMO and tall_masks code.

Keep only the weights that at least k TALL masks select (k=2 drops "selfish" weights useful to
one task and "catastrophic" ones useful to none): θ = θ0 + α (τ_MTL ⊙ [Σ_t m_t ≥ k]), τ_MTL = Σ τ_t.
The reference code builds each task's mask with that task's validated λ_t; here one λ serves all
tasks (a grid-search value). α defaults to task arithmetic's 0.3, the method it filters.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from simokit.merge.methods.base import MergeMethod, MergeParams, check_int, check_number, steps
from simokit.merge.methods.tall_mask import LAMBDA_GRID, check_lambda, tall_mask_tensor
from simokit.merge.registry import register


@dataclass(frozen=True)
class ConsensusParams(MergeParams):
    """k: minimum number of TALL masks keeping a weight; lam: TALL λ; alpha: scaling of τ_MTL."""

    k: int = 2
    lam: float = 0.4
    alpha: float = 0.3

    def __post_init__(self) -> None:
        check_int("consensus", "k", self.k, 0)
        check_lambda("consensus", self.lam)
        check_number("consensus", "alpha", self.alpha, 0.0, 10.0)


@register
class Consensus(MergeMethod[ConsensusParams]):
    """θ = θ0 + α (τ_MTL ⊙ [Σ_t m_t ≥ k])."""

    name = "consensus"
    params_type = ConsensusParams

    @classmethod
    def grid(cls) -> list[dict[str, Any]]:
        """λ ∈ {0.2, 0.4, 0.6} × α ∈ {0.1, …, 1.0}."""
        return [{"lam": lam, "alpha": a} for lam, a in itertools.product(LAMBDA_GRID, steps(0.1, 1.0, 0.1))]

    def merge_tensor(self, key: str, taus: list[Tensor]) -> Tensor:
        """α τ_MTL where at least k tasks' masks agree, 0 elsewhere."""
        votes = tall_mask_tensor(taus, self.params.lam).sum(dim=0)
        return self.params.alpha * torch.stack(taus).sum(dim=0) * (votes >= self.params.k)

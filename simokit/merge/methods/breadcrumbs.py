"""`breadcrumbs` — Model Breadcrumbs (Davari & Belilovsky, ECCV 2024).

Per tensor (layer) and expert, mask out the top β fraction of |τ_t| (outliers) and the bottom γ
fraction (small perturbations), then θ = θ0 + α Σ_t (mask_t ⊙ τ_t). Counts are ⌊β·n⌋ and ⌊γ·n⌋,
with ties split by position (stable sort) so exactly that many entries go.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from simokit.errors import ConfigError
from simokit.merge.methods.base import MergeMethod, MergeParams, check_number, steps
from simokit.merge.registry import register
from simokit.merge.task_vectors import magnitude_band


@dataclass(frozen=True)
class BreadcrumbsParams(MergeParams):
    """beta: top fraction dropped; gamma: bottom fraction dropped (beta + gamma < 1); alpha: scaling."""

    beta: float = 0.01
    gamma: float = 0.85
    alpha: float = 0.3

    def __post_init__(self) -> None:
        check_number("breadcrumbs", "beta", self.beta, 0.0, 1.0, open_high=True)
        check_number("breadcrumbs", "gamma", self.gamma, 0.0, 1.0, open_high=True)
        check_number("breadcrumbs", "alpha", self.alpha, 0.0, 10.0)
        if self.beta + self.gamma >= 1.0:
            raise ConfigError(
                f"merge method 'breadcrumbs': beta + gamma = {self.beta + self.gamma} drops every weight; "
                "keep beta + gamma < 1"
            )


@register
class Breadcrumbs(MergeMethod[BreadcrumbsParams]):
    """θ = θ0 + α Σ_t band_{β,γ}(τ_t) ⊙ τ_t, the band taken per tensor."""

    name = "breadcrumbs"
    params_type = BreadcrumbsParams

    @classmethod
    def grid(cls) -> list[dict[str, Any]]:
        """γ ∈ {0.8, 0.85, 0.9} × α ∈ {0.1, …, 1.0} (β stays 0.01)."""
        return [
            {"gamma": g, "alpha": a} for g, a in itertools.product((0.8, 0.85, 0.9), steps(0.1, 1.0, 0.1))
        ]

    def merge_tensor(self, key: str, taus: list[Tensor]) -> Tensor:
        """α Σ_t τ_t with each τ_t's outliers and small entries zeroed."""
        kept = [t * magnitude_band(t, self.params.beta, self.params.gamma) for t in taus]
        return self.params.alpha * torch.stack(kept).sum(dim=0)

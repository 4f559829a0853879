"""`sum` — Task Arithmetic (Ilharco et al., ICLR 2023): θ = θ0 + α Σ_t τ_t."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from simokit.merge.methods.base import MergeMethod, MergeParams, check_number, steps
from simokit.merge.registry import register


@dataclass(frozen=True)
class SumParams(MergeParams):
    """alpha: scaling of the summed task vectors (paper grid 0.1..1.0; 0.3 is its usual pick)."""

    alpha: float = 0.3

    def __post_init__(self) -> None:
        check_number("sum", "alpha", self.alpha, 0.0, 10.0)


@register
class TaskArithmetic(MergeMethod[SumParams]):
    """θ = θ0 + α Σ_t τ_t."""

    name = "sum"
    params_type = SumParams

    @classmethod
    def grid(cls) -> list[dict[str, Any]]:
        """α ∈ {0.1, …, 1.0}."""
        return [{"alpha": a} for a in steps(0.1, 1.0, 0.1)]

    def merge_tensor(self, key: str, taus: list[Tensor]) -> Tensor:
        """α Σ_t τ_t."""
        return self.params.alpha * torch.stack(taus).sum(dim=0)

"""`average` — weight averaging of the experts: θ = θ0 + (1/T) Σ_t τ_t (= mean of the θ_t)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from simokit.merge.methods.base import MergeMethod, MergeParams
from simokit.merge.registry import register


@dataclass(frozen=True)
class AverageParams(MergeParams):
    """No hyper-parameters."""


@register
class Average(MergeMethod[AverageParams]):
    """θ = θ0 + (1/T) Σ_t τ_t."""

    name = "average"
    params_type = AverageParams

    def merge_tensor(self, key: str, taus: list[Tensor]) -> Tensor:
        """(1/T) Σ_t τ_t."""
        return torch.stack(taus).mean(dim=0)

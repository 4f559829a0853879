"""`zeroshot` — the base encoder unchanged (θ = θ0); each expert's head is used as it is."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from simokit.merge.methods.base import MergeMethod, MergeParams
from simokit.merge.registry import register


@dataclass(frozen=True)
class ZeroshotParams(MergeParams):
    """No hyper-parameters."""


@register
class Zeroshot(MergeMethod[ZeroshotParams]):
    """θ = θ0: the lower bound every merge should beat."""

    name = "zeroshot"
    params_type = ZeroshotParams

    def merge_tensor(self, key: str, taus: list[Tensor]) -> Tensor:
        """A zero update."""
        return torch.zeros_like(taus[0])

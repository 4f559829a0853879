"""`dare` — DARE (Yu et al., ICML 2024, "Language Models are Super Mario") + task arithmetic.

Each entry of τ_t is dropped with probability p and survivors are scaled by 1/(1−p), which keeps
E[τ̃_t] = τ_t; then θ = θ0 + α Σ_t τ̃_t. The random mask of (tensor key, expert t) comes from a
generator seeded by sha256(seed | key | t), so a merge is reproducible whatever order or process
reads the tensors in (streaming and in-memory merges agree bit for bit).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from simokit.merge.methods.base import MergeMethod, MergeParams, check_int, check_number, steps
from simokit.merge.registry import register
from simokit.merge.task_vectors import drop_and_rescale, stable_seed


@dataclass(frozen=True)
class DareParams(MergeParams):
    """p: drop probability in [0, 1); alpha: task-arithmetic scaling; seed: base of the per-tensor seeds."""

    p: float = 0.9
    alpha: float = 0.3
    seed: int = 0

    def __post_init__(self) -> None:
        check_number("dare", "p", self.p, 0.0, 1.0, open_high=True)
        check_number("dare", "alpha", self.alpha, 0.0, 10.0)
        check_int("dare", "seed", self.seed, 0)


@register
class Dare(MergeMethod[DareParams]):
    """θ = θ0 + α Σ_t DARE_p(τ_t)."""

    name = "dare"
    params_type = DareParams

    @classmethod
    def grid(cls) -> list[dict[str, Any]]:
        """p ∈ {0.5, 0.7, 0.9} × α ∈ {0.1, …, 1.0}."""
        return [{"p": p, "alpha": a} for p, a in itertools.product((0.5, 0.7, 0.9), steps(0.1, 1.0, 0.1))]

    def merge_tensor(self, key: str, taus: list[Tensor]) -> Tensor:
        """α Σ_t τ̃_t with a generator per (seed, key, t)."""
        total = torch.zeros_like(taus[0])
        for index, tau in enumerate(taus):
            generator = torch.Generator().manual_seed(stable_seed(self.params.seed, key, index))
            total += drop_and_rescale(tau, self.params.p, generator)
        return self.params.alpha * total

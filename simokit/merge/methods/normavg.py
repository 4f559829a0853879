"""`normavg` — norm-balanced task arithmetic: θ = θ0 + α Σ_t (n̄ / ‖τ_t‖) τ_t.

Why: the TAP (task alignment proxy) paper points out that in task arithmetic the experts whose
task vectors have larger norms (more steps, a larger learning rate, a harder task) dominate the
sum, whatever their directions. Rescaling every τ_t to the mean global L2 norm over experts,
n̄ = (1/T) Σ_t ‖τ_t‖, keeps the overall update size of plain task arithmetic (same α grid) while
giving each task an equal say. Norms are over the whole encoder task vector (one statistics
pass); an expert with τ_t = 0 contributes 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from simokit.merge.methods.base import MergeMethod, MergeParams, MergeSetup, check_number, steps
from simokit.merge.registry import register


@dataclass(frozen=True)
class NormAvgParams(MergeParams):
    """alpha: scaling of the norm-balanced sum (same role as task arithmetic's α)."""

    alpha: float = 0.3

    def __post_init__(self) -> None:
        check_number("normavg", "alpha", self.alpha, 0.0, 10.0)


@register
class NormAvg(MergeMethod[NormAvgParams]):
    """θ = θ0 + α Σ_t (n̄/‖τ_t‖) τ_t with global L2 norms."""

    name = "normavg"
    params_type = NormAvgParams

    def __init__(self, params: NormAvgParams, setup: MergeSetup) -> None:
        super().__init__(params, setup)
        self._squares = [0.0] * setup.num_experts
        self.weights: list[float] = []

    @classmethod
    def grid(cls) -> list[dict[str, Any]]:
        """α ∈ {0.1, …, 1.0}."""
        return [{"alpha": a} for a in steps(0.1, 1.0, 0.1)]

    @property
    def stat_passes(self) -> int:
        """One pass to accumulate ‖τ_t‖²."""
        return 1

    def observe(self, pass_index: int, key: str, taus: list[Tensor]) -> None:
        """Add Σ τ_t² of this tensor (float64) to each expert's total."""
        for t, tau in enumerate(taus):
            self._squares[t] += float(tau.double().square().sum())

    def end_pass(self, pass_index: int) -> None:
        """Turn the squared norms into per-expert weights n̄/‖τ_t‖."""
        norms = [math.sqrt(s) for s in self._squares]
        mean = sum(norms) / len(norms)
        self.weights = [mean / n if n > 0 else 0.0 for n in norms]

    def merge_tensor(self, key: str, taus: list[Tensor]) -> Tensor:
        """α Σ_t w_t τ_t."""
        if len(self.weights) != len(taus):
            raise RuntimeError("normavg: weights used before the statistics pass ran")
        return self.params.alpha * sum(
            (w * t for w, t in zip(self.weights, taus, strict=True)), torch.zeros_like(taus[0])
        )

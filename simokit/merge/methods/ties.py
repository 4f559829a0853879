"""`ties` — TIES-Merging (Yadav et al., NeurIPS 2023): trim, elect sign, disjoint mean.

1. Trim: keep the ⌊k·n⌋ largest |τ_t| of each task vector (ties at the threshold kept). With
   scope "global" (the paper) n counts the WHOLE task vector and the threshold comes from an exact
   streaming radix select (`simokit.merge.topk`); "tensor" trims each tensor separately. The
   reference code keeps ⌊k·n⌋+1 entries (an off-by-one in its kthvalue index); we keep ⌊k·n⌋.
2. Elect: γ = sign(Σ_t τ̂_t) per parameter. Where the sum is exactly 0 we keep γ = 0 (the update
   is 0) instead of the reference code's global-majority fill, which needs a third pass.
3. Disjoint mean over experts whose τ̂_t is non-zero with sign γ; θ = θ0 + α · merged.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from simokit.errors import ConfigError
from simokit.merge.methods.base import MergeMethod, MergeParams, MergeSetup, check_number
from simokit.merge.registry import register
from simokit.merge.task_vectors import (
    disjoint_mean,
    elect_sign,
    keep_count,
    kth_largest_magnitude,
    trim_magnitude,
)
from simokit.merge.topk import MagnitudeThreshold

SCOPES = ("global", "tensor")


@dataclass(frozen=True)
class TiesParams(MergeParams):
    """k: fraction of magnitudes kept per task vector; alpha: scaling; scope: "global" | "tensor"."""

    k: float = 0.2
    alpha: float = 1.0
    scope: str = "global"

    def __post_init__(self) -> None:
        check_number("ties", "k", self.k, 0.0, 1.0, open_low=True)
        check_number("ties", "alpha", self.alpha, 0.0, 10.0)
        if self.scope not in SCOPES:
            raise ConfigError(f"merge method 'ties': scope={self.scope!r} must be one of {', '.join(SCOPES)}")


@register
class Ties(MergeMethod[TiesParams]):
    """θ = θ0 + α · disjoint_mean(trim_k(τ_t), sign(Σ trim_k(τ_t)))."""

    name = "ties"
    params_type = TiesParams

    def __init__(self, params: TiesParams, setup: MergeSetup) -> None:
        super().__init__(params, setup)
        experts = setup.num_experts if params.scope == "global" else 0
        self._global = [MagnitudeThreshold(params.k) for _ in range(experts)]

    @classmethod
    def grid(cls) -> list[dict[str, Any]]:
        """k ∈ {0.1, 0.2, 0.3} × α ∈ {0.6, …, 1.4}."""
        ks, alphas = (0.1, 0.2, 0.3), (0.6, 0.8, 1.0, 1.2, 1.4)
        return [{"k": k, "alpha": a} for k, a in itertools.product(ks, alphas)]

    @property
    def stat_passes(self) -> int:
        """Two radix-select passes for the global threshold, none per tensor."""
        return MagnitudeThreshold.passes if self.params.scope == "global" else 0

    def observe(self, pass_index: int, key: str, taus: list[Tensor]) -> None:
        """Histogram each expert's magnitudes."""
        for selector, tau in zip(self._global, taus, strict=True):
            selector.observe(pass_index, tau)

    def end_pass(self, pass_index: int) -> None:
        """Advance each expert's radix select."""
        for selector in self._global:
            selector.end_pass(pass_index)

    def thresholds(self, taus: list[Tensor]) -> list[float]:
        """Per-expert magnitude thresholds for this tensor (global ones once the passes ran)."""
        if self.params.scope == "global":
            found = [s.threshold for s in self._global]
            if None in found:
                raise RuntimeError("ties: global thresholds used before the statistics passes ran")
            return [float(thr) for thr in found if thr is not None]
        return [kth_largest_magnitude(t, keep_count(t.numel(), self.params.k)) for t in taus]

    def merge_tensor(self, key: str, taus: list[Tensor]) -> Tensor:
        """α · disjoint mean of the trimmed, sign-agreeing task vectors."""
        trimmed = self._trimmed(taus)
        return self.params.alpha * disjoint_mean(trimmed, elect_sign(trimmed))

    def task_contributions(self, key: str, taus: list[Tensor]) -> Tensor:
        """(T, ...) per-task vectors after trimming and sign election, before the disjoint mean."""
        trimmed = self._trimmed(taus)
        return trimmed * (trimmed * elect_sign(trimmed) > 0)

    def _trimmed(self, taus: list[Tensor]) -> Tensor:
        return torch.stack(
            [trim_magnitude(t, thr) for t, thr in zip(taus, self.thresholds(taus), strict=True)]
        )

"""`star` — STAR, Spectral Truncation And Rescale (Lee et al., NAACL 2025).

For each 2-D weight of each τ_t = U diag(σ) Vᵀ: keep the smallest rank r with Σ_{i≤r} σ_i ≥ η Σ σ_i,
rescale the kept σ by Σσ / Σ_{i≤r} σ_i so the nuclear norm is unchanged, and rebuild τ_t'.
Other tensors are left as they are. Choices, following the paper and its code (IBM/STAR): η = 0.4
(code default `--eta 40`, in percent there) and the processed task vectors are AVERAGED, so
θ = θ0 + α (1/T) Σ_t τ_t' with α = 1 reproducing the paper; α > 1 moves toward a sum.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from simokit.merge.methods.base import MergeMethod, MergeParams, check_number
from simokit.merge.registry import register
from simokit.merge.task_vectors import is_matrix, truncated_svd


def spectral_truncate_rescale(m: Tensor, eta: float) -> Tensor:
    """STAR on one matrix (r×c): keep the top singular values holding η of Σσ, rescaled to Σσ."""
    u, s, vh = truncated_svd(m)
    total = s.sum()
    if total <= 0:
        return torch.zeros_like(m)
    cumulative = torch.cumsum(s, dim=0)
    target = torch.tensor([float(eta * total)], dtype=s.dtype)
    rank = min(int(torch.searchsorted(cumulative, target)) + 1, s.numel())
    kept = s[:rank]
    return (u[:, :rank] * (kept * (total / kept.sum()))) @ vh[:rank]


@dataclass(frozen=True)
class StarParams(MergeParams):
    """eta: fraction of the nuclear norm the kept singular values must hold; alpha: scaling of the mean."""

    eta: float = 0.4
    alpha: float = 1.0

    def __post_init__(self) -> None:
        check_number("star", "eta", self.eta, 0.0, 1.0, open_low=True)
        check_number("star", "alpha", self.alpha, 0.0, 10.0)


@register
class Star(MergeMethod[StarParams]):
    """θ = θ0 + α (1/T) Σ_t STAR_η(τ_t) (non-matrix tensors untouched before averaging)."""

    name = "star"
    params_type = StarParams

    @classmethod
    def grid(cls) -> list[dict[str, Any]]:
        """η ∈ {0.2, 0.4, 0.6, 0.8} × α ∈ {1, 1.5, 2, 3}."""
        return [
            {"eta": e, "alpha": a} for e, a in itertools.product((0.2, 0.4, 0.6, 0.8), (1.0, 1.5, 2.0, 3.0))
        ]

    def merge_tensor(self, key: str, taus: list[Tensor]) -> Tensor:
        """α · mean of the spectrally truncated and rescaled task vectors."""
        processed = [spectral_truncate_rescale(t, self.params.eta) if is_matrix(t) else t for t in taus]
        return self.params.alpha * torch.stack(processed).mean(dim=0)

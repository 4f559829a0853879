"""`tall_mask` — TALL masks (Wang et al., ICML 2024), as in the SIMO and tall_masks code.

τ_MTL = Σ_t τ_t (task arithmetic). Task t's mask keeps the parameters where τ_t carries more of
τ_MTL than the other tasks do: m_t = |τ_t| > λ_t · |τ_MTL − τ_t|. The method returns the
task-specific encoder θ_t' = θ0 + α (m_t ⊙ τ_MTL). We use the code's strict `>` (the paper
writes ≥): a parameter no expert changed (τ_t = τ_MTL − τ_t = 0) is then in no mask, so the
compact per-task deltas the SiM routing stores hold only parameters that moved.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from simokit.errors import ConfigError
from simokit.merge.api import check_experts
from simokit.merge.methods.base import MergeMethod, MergeParams, check_int, check_number
from simokit.merge.registry import register
from simokit.merge.task_vectors import task_vectors

LAMBDA_GRID = (0.2, 0.4, 0.6)


def tall_mask_tensor(taus: Sequence[Tensor], lam: float | Sequence[float]) -> Tensor:
    """Return the (T, ...) boolean TALL masks of one tensor: |τ_t| > λ_t |Σ_s τ_s − τ_t|."""
    stacked = torch.stack(list(taus))
    lams = [float(lam)] * len(taus) if isinstance(lam, (int, float)) else [float(v) for v in lam]
    if len(lams) != len(taus):
        raise ConfigError(f"TALL masks: got {len(lams)} lambdas for {len(taus)} experts; give one per expert")
    scale = torch.tensor(lams, dtype=stacked.dtype).reshape(-1, *([1] * (stacked.dim() - 1)))
    return stacked.abs() > scale * (stacked.sum(dim=0) - stacked).abs()


def tall_masks(
    base: dict[str, Tensor], experts: list[dict[str, Tensor]], lam: float | Sequence[float] = 0.4
) -> list[dict[str, Tensor]]:
    """Return one {key: bool mask shaped like base[key]} per expert, over the float tensors of `base`."""
    check_experts(base, experts)
    masks: list[dict[str, Tensor]] = [{} for _ in experts]
    for key, tensor in base.items():
        if not tensor.is_floating_point():
            continue
        per_task = tall_mask_tensor(task_vectors(tensor, [e[key] for e in experts]), lam)
        for t, mask in enumerate(per_task):
            masks[t][key] = mask
    return masks


def check_lambda(method: str, lam: float) -> None:
    """λ must be a non-negative number."""
    check_number(method, "lam", lam, 0.0, 100.0)


@dataclass(frozen=True)
class TallMaskParams(MergeParams):
    """task: expert index whose encoder is built; lam: TALL λ; alpha: scaling of τ_MTL (code: 1.0)."""

    task: int = 0
    lam: float = 0.4
    alpha: float = 1.0

    def __post_init__(self) -> None:
        check_int("tall_mask", "task", self.task, 0)
        check_lambda("tall_mask", self.lam)
        check_number("tall_mask", "alpha", self.alpha, 0.0, 10.0)


@register
class TallMask(MergeMethod[TallMaskParams]):
    """θ_t' = θ0 + α (m_t ⊙ Σ_s τ_s) for the chosen task t."""

    name = "tall_mask"
    params_type = TallMaskParams

    @classmethod
    def grid(cls) -> list[dict[str, Any]]:
        """λ ∈ {0.2, 0.4, 0.6}, searched per task (the caller sets `task`)."""
        return [{"lam": lam} for lam in LAMBDA_GRID]

    def check_setup(self) -> None:
        """`task` must name one of the T experts."""
        if self.params.task >= self.setup.num_experts:
            raise ConfigError(
                f"merge method 'tall_mask': task={self.params.task} but only "
                f"{self.setup.num_experts} experts; use 0..{self.setup.num_experts - 1}"
            )

    def merge_tensor(self, key: str, taus: list[Tensor]) -> Tensor:
        """α (m_task ⊙ τ_MTL)."""
        mask = tall_mask_tensor(taus, self.params.lam)[self.params.task]
        return self.params.alpha * torch.stack(taus).sum(dim=0) * mask

"""Layer-wise merge coefficients: θ = θ0 + Σ_t λ[t, l(key)] τ_t, and AdaMerging's hyper-parameters.

l(key) is a tensor's layer (0 embeddings, 1..depth blocks, depth+1 final norm); τ_t are the task
vectors as a base merge method contributes them: plain for "sum", TIES-trimmed and sign-elected
for "ties" (AdaMerging++).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from simokit.errors import ConfigError
from simokit.merge.api import check_experts, prepare, run_stat_passes
from simokit.merge.methods.base import MergeParams
from simokit.merge.task_vectors import block_index, infer_depth, task_vectors
from simokit.recipe import Choice

METHOD = "adamerging_tap"


class Basis(Choice):
    """The merge method whose per-task contributions the coefficients weigh."""

    SUM = "sum"
    TIES = "ties"


@dataclass(frozen=True)
class AdaMergingParams(MergeParams):
    """Hyper-parameters; `coefficients` (T x L) is filled in by learning and then used as is."""

    base: str = "sum"
    k: float = 0.2
    init: float | None = None
    iters: int = 500
    batch: int = 16
    lr: float = 5e-3
    ema: float = 0.9
    ema_floor: float = 0.5
    max_coef: float = 1.5
    seed: int = 0
    coefficients: list[list[float]] | None = None

    def __post_init__(self) -> None:
        Basis.parse(self.base, f"{METHOD}: base")
        for name, low in (("iters", 1), ("batch", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or value < low:
                raise ConfigError(f"{METHOD}: {name}={value!r} must be an integer >= {low}")
        if not (0 < self.lr < 1 and 0 <= self.ema < 1 and 0 < self.k <= 1 and self.max_coef > 0):
            raise ConfigError(f"{METHOD}: need 0 < lr < 1, 0 <= ema < 1, 0 < k <= 1 and max_coef > 0")
        if not 0 <= self.ema_floor <= 1:
            raise ConfigError(f"{METHOD}: ema_floor={self.ema_floor} must be in [0, 1]")

    def basis_hparams(self) -> dict[str, Any]:
        """Hyper-parameters of the base method whose contributions are weighed."""
        return {"k": self.k} if self.base == Basis.TIES else {}


@dataclass
class TaskVectorStack:
    """Per key, the T experts' (processed) task vectors stacked (T, ...), and each key's layer."""

    vectors: dict[str, Tensor]
    layers: dict[str, int]
    num_layers: int

    @property
    def num_tasks(self) -> int:
        """T."""
        return next(iter(self.vectors.values())).shape[0]


def num_layers(depth: int) -> int:
    """Coefficient columns of an encoder of `depth` blocks: embeddings, the blocks, the final norm."""
    return depth + 2


def stack_task_vectors(
    base: dict[str, Tensor], experts: list[dict[str, Tensor]], params: AdaMergingParams
) -> TaskVectorStack:
    """τ_t for every float tensor as the params' base method contributes them, grouped by layer."""
    check_experts(base, experts)
    depth = infer_depth(base)
    float_keys = [k for k, v in base.items() if v.is_floating_point()]

    def load(key: str) -> tuple[Tensor, list[Tensor]]:
        return base[key], [e[key] for e in experts]

    with torch.no_grad():
        basis = prepare(len(experts), list(base), params.base, params.basis_hparams())
        run_stat_passes(basis, list(base), set(float_keys), load)
        vectors = {k: basis.task_contributions(k, task_vectors(*load(k))) for k in float_keys}
    return TaskVectorStack(vectors, {k: block_index(k, depth) for k in float_keys}, num_layers(depth))


def weighted_sum(tau: Tensor, weights: Tensor) -> Tensor:
    """Σ_t weights[t] τ[t] for one tensor's (T, ...) contributions and its (T,) coefficient column."""
    return (weights.reshape(-1, *([1] * (tau.dim() - 1))) * tau).sum(dim=0)


def merged_state(base: dict[str, Tensor], stack: TaskVectorStack, coef: Tensor) -> dict[str, Tensor]:
    """θ0 + Σ_t coef[t, layer] τ_t for float tensors, the base's for the rest (differentiable in coef)."""
    out = dict(base)
    for key, tau in stack.vectors.items():
        out[key] = base[key].to(tau.dtype) + weighted_sum(tau, coef[:, stack.layers[key]])
    return out

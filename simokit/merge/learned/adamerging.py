"""`adamerging_tap` — AdaMerging with the TAP loss: merge coefficients per task and layer, learned
without labels (see `tap`), on top of task-arithmetic ("sum") or TIES ("ties") task vectors.

Once learned, the (T, L) coefficients are stored in the candidate's hyper-parameters, so
rebuilding the merge (in memory or streaming) needs no second optimisation.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import Tensor

from simokit.errors import ConfigError
from simokit.merge.learned.base import LearnContext, Learned, LearnedMerge
from simokit.merge.learned.coefficients import METHOD, AdaMergingParams, num_layers, weighted_sum
from simokit.merge.learned.tap import learn_coefficients
from simokit.merge.methods.base import MergeMethod, MergeSetup
from simokit.merge.registry import build_method, register
from simokit.merge.select import pick
from simokit.merge.task_vectors import block_index

DEFAULT_INIT = 0.3  # task arithmetic's usual alpha, when no grid candidate of it was scored


@register
class AdaMergingTap(LearnedMerge[AdaMergingParams]):
    """θ = θ0 + Σ_t λ[t, layer] τ_t with λ learned by `learn` and given as `coefficients`."""

    name = METHOD
    params_type = AdaMergingParams
    seconds_key = "adamerging"

    def __init__(self, params: AdaMergingParams, setup: MergeSetup) -> None:
        super().__init__(params, setup)
        self._basis: MergeMethod[Any] = build_method(params.base, setup, **params.basis_hparams())
        given = params.coefficients
        self._coef = None if given is None else torch.tensor(given, dtype=torch.float32)

    @classmethod
    def grid(cls) -> list[dict[str, Any]]:
        """Learned on top of task arithmetic and of TIES task vectors."""
        return [{"base": "sum"}, {"base": "ties"}]

    def check_setup(self) -> None:
        """Refuse missing coefficients, or coefficients learned for another number of tasks or layers."""
        if self._coef is None:
            raise ConfigError(f"{METHOD}: no learned coefficients; run learn_coefficients first")
        want = (self.setup.num_experts, num_layers(self.setup.depth))
        if tuple(self._coef.shape) != want:
            raise ConfigError(
                f"{METHOD}: coefficients are {tuple(self._coef.shape)} but this merge needs "
                f"({want[0]} tasks, {want[1]} layers)"
            )

    @property
    def stat_passes(self) -> int:
        """The base method's statistics passes (TIES: its global thresholds)."""
        return self._basis.stat_passes

    def observe(self, pass_index: int, key: str, taus: list[Tensor]) -> None:
        """Feed the base method's statistics."""
        self._basis.observe(pass_index, key, taus)

    def end_pass(self, pass_index: int) -> None:
        """Finish the base method's statistics pass."""
        self._basis.end_pass(pass_index)

    def task_contributions(self, key: str, taus: list[Tensor]) -> Tensor:
        """The base method's per-task contributions, before weighting."""
        return self._basis.task_contributions(key, taus)

    def merge_tensor(self, key: str, taus: list[Tensor]) -> Tensor:
        """Σ_t λ[t, layer(key)] τ_t over the base method's contributions."""
        if self._coef is None:
            raise ConfigError(f"{METHOD}: no learned coefficients; run learn_coefficients first")
        column = self._coef[:, block_index(key, self.setup.depth)]
        return weighted_sum(self.task_contributions(key, taus), column)

    @classmethod
    def learn(cls, hparams: dict[str, Any], ctx: LearnContext) -> Learned:
        """Learn the coefficients of grid entry `hparams`; `init` defaults to task arithmetic's pick."""
        sums = [c for c in ctx.earlier if c.method == "sum"]
        if "init" not in hparams and sums:
            # task arithmetic's alpha, chosen by the study's own (label-free unless 'eval') criterion
            alpha = pick(sums, ctx.select).hparams.get("alpha", DEFAULT_INIT)
            hparams = {**hparams, "init": float(alpha)}
        params = cast(AdaMergingParams, cls.params_from(hparams))
        blocks = {
            t: sorted(
                {s[0] for s, part in ctx.parts[t] if part == "patch"} or {s[0] for s, _ in ctx.parts[t]}
            )
            for t in ctx.experts
        }
        result = learn_coefficients(
            ctx.encoder, ctx.base, ctx.experts, blocks, ctx.images, params, ctx.progress, ctx.device
        )
        report = {k: v for k, v in vars(result).items() if k != "coefficients"}
        label = ", ".join(f"{k}={v}" for k, v in hparams.items() if k != "coefficients")
        return Learned({**hparams, "coefficients": result.coefficients}, label, report)

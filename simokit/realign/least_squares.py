"""Least-squares re-alignment of a merged encoder to each frozen task head (the SIMO fix).

After merging, the features a head reads no longer match those its expert encoder produced
("representation misalignment"). For every (block, part) a head consumes we fit an affine map
f_expert ≈ A f_merged + c on a few unlabelled images and fold it into the head's first linear
layer (W' = W A, b' = W c + b), so deployment runs the plain merged encoder and plain heads.

Statistics are accumulated as float64 Gram matrices, so memory is O(C^2) however many images are
used. `mode="head"` fits one map per task; `mode="joint"` fits one map per (block, part) shared by
all tasks with the experts' features stacked as targets (it tends to lose to "head" because heads
expect different feature spaces; it is kept as a measured baseline).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from simokit.data import SceneArrays
from simokit.errors import ConfigError
from simokit.merge.features import BatchFeatures, Part, collect, head_parts, image_batches, part_of, rows
from simokit.models import DinoVisionTransformer
from simokit.models.heads import DenseHead, fold_linear_map
from simokit.realign.base import ExpertTargets, RealignResult, RealignSettings
from simokit.realign.registry import register
from simokit.recipe import LEAST_SQUARES, RealignMode

MODES = tuple(m.value for m in LEAST_SQUARES)


class GramAccumulator:
    """Running X̃ᵀX̃, X̃ᵀY and Yᵀ/Xᵀ traces in float64 for the affine least-squares fit Y ≈ X Aᵀ + c."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.xtx = torch.zeros(dim + 1, dim + 1, dtype=torch.float64)
        self.xty = torch.zeros(dim + 1, dim, dtype=torch.float64)
        self.yty_trace = 0.0
        self.n = 0

    def update(self, x: Tensor, y: Tensor) -> None:
        """Add rows: x, y (N, C) merged and expert features of the same inputs."""
        x1 = torch.cat([x.double(), torch.ones(x.shape[0], 1, dtype=torch.float64)], dim=1)
        yd = y.double()
        self.xtx += x1.T @ x1
        self.xty += x1.T @ yd
        self.yty_trace += float((yd * yd).sum())
        self.n += x.shape[0]

    def solve(self, ridge: float, rank: int | None = None) -> tuple[Tensor, Tensor]:
        """Return A (C, C) and c (C,) minimising ‖Y − X Aᵀ − c‖² + λ‖A − I‖², λ = ridge·tr(XᵀX)/C."""
        d = self.dim
        lam = ridge * float(torch.trace(self.xtx[:d, :d])) / d
        reg = torch.zeros_like(self.xtx)
        reg[:d, :d] = lam * torch.eye(d, dtype=torch.float64)
        # Shrinking towards the identity (not towards 0) keeps a well-aligned feature unchanged.
        prior = torch.zeros_like(self.xty)
        prior[:d] = lam * torch.eye(d, dtype=torch.float64)
        w = torch.linalg.solve(self.xtx + reg, self.xty + prior)
        a, c = w[:d].T.contiguous(), w[d].contiguous()
        if rank is not None and rank < d:
            u, s, vh = torch.linalg.svd(a - torch.eye(d, dtype=torch.float64))
            a = torch.eye(d, dtype=torch.float64) + (u[:, :rank] * s[:rank]) @ vh[:rank]
        return a, c

    def residual(self, a: Tensor, c: Tensor) -> float:
        """‖Y − X Aᵀ − c‖² / ‖Y‖² over the accumulated rows, from the Gram matrices alone."""
        w = torch.cat([a.T, c[None]], dim=0)
        err = self.yty_trace - 2 * float((w * self.xty).sum()) + float((w * (self.xtx @ w)).sum())
        return max(err, 0.0) / max(self.yty_trace, 1e-30)


@torch.no_grad()
def fit_realignment(
    merged: DinoVisionTransformer,
    experts: dict[str, DinoVisionTransformer],
    heads: dict[str, DenseHead],
    data: SceneArrays,
    mode: str = "head",
    n_images: int = 128,
    ridge: float = 1e-3,
    rank: int | None = None,
    batch: int = 32,
    progress: bool = False,
    expert_features: dict[str, list[BatchFeatures]] | None = None,
    device: str = "cpu",
) -> RealignResult:
    """Fit the maps on `n_images` unlabelled images and return folded copies of `heads`.

    `expert_features` (from `features.collect` on the same images and batch size) skips
    re-running the expert encoders, which a grid search would otherwise repeat per candidate.
    Encoders run on `device`; the least-squares fits run on CPU.
    """
    if mode not in MODES:
        raise ConfigError(f"re-alignment mode '{mode}' is not one of {', '.join(MODES)}")
    given = set(expert_features) if expert_features is not None else set(experts)
    if given != set(heads):
        raise ConfigError(f"re-alignment needs one expert per head; got {sorted(given)} vs {sorted(heads)}")
    depth = merged.depth
    parts = {t: head_parts(h, depth) for t, h in heads.items()}
    blocks = sorted({b for ps in parts.values() for b, _ in ps})
    batches = list(image_batches(data, n_images, batch))
    if expert_features is None:
        expert_features = {
            t: collect(enc, batches, sorted({b for b, _ in parts[t]}), device) for t, enc in experts.items()
        }
    merged_features = collect(merged, batches, blocks, device)
    grams: dict[str, dict[Part, GramAccumulator]] = {t: {} for t in heads}
    bar = tqdm(merged_features, desc=f"re-align ({mode})", disable=not progress, leave=False)
    for i, fm in enumerate(bar):
        for task in heads:
            for part in parts[task]:
                g = grams[task].setdefault(part, GramAccumulator(merged.embed_dim))
                g.update(rows(fm, part), rows(expert_features[task][i], part))
    maps = _solve(grams, mode, ridge, rank)
    result = RealignResult(heads={}, images=min(n_images, len(data)))
    for task, head in heads.items():
        folded = copy.deepcopy(head).eval()
        for consumer in folded.consumers():
            fold_linear_map(consumer, *(m.float() for m in maps[task][part_of(consumer, folded, depth)]))
        result.heads[task] = folded
        result.stats[task] = _fit_stats(grams[task], maps[task])
    return result


def _solve(
    grams: dict[str, dict[Part, GramAccumulator]], mode: str, ridge: float, rank: int | None
) -> dict[str, dict[Part, tuple[Tensor, Tensor]]]:
    if mode == "head":
        return {t: {p: g.solve(ridge, rank) for p, g in gs.items()} for t, gs in grams.items()}
    # Joint: Gram matrices add, so the stacked-target fit is the solve of their sum.
    summed: dict[Part, GramAccumulator] = {}
    for gs in grams.values():
        for p, g in gs.items():
            total = summed.setdefault(p, GramAccumulator(g.dim))
            total.xtx += g.xtx
            total.xty += g.xty
            total.yty_trace += g.yty_trace
            total.n += g.n
    shared = {p: g.solve(ridge, rank) for p, g in summed.items()}
    return {t: {p: shared[p] for p in gs} for t, gs in grams.items()}


def _fit_stats(
    grams: dict[Part, GramAccumulator], maps: dict[Part, tuple[Tensor, Tensor]]
) -> dict[str, float]:
    before, after = [], []
    for p, g in grams.items():
        eye = torch.eye(g.dim, dtype=torch.float64)
        before.append(g.residual(eye, torch.zeros(g.dim, dtype=torch.float64)))
        after.append(g.residual(*maps[p]))
    return {"residual_before": float(np.mean(before)), "residual_after": float(np.mean(after))}


def _least_squares(
    mode: str,
    merged: DinoVisionTransformer,
    heads: dict[str, DenseHead],
    data: SceneArrays,
    settings: RealignSettings,
    experts: ExpertTargets,
) -> RealignResult:
    return fit_realignment(
        merged,
        experts.encoders,
        heads,
        data,
        mode=mode,
        n_images=settings.n_images,
        ridge=settings.ridge,
        batch=settings.batch,
        expert_features=experts.features,
        device=settings.device,
    )


@register(RealignMode.HEAD)
def fit_per_head(
    merged: DinoVisionTransformer,
    heads: dict[str, DenseHead],
    data: SceneArrays,
    settings: RealignSettings,
    experts: ExpertTargets,
) -> RealignResult:
    """One least-squares map per task and (block, part), folded into that task's head."""
    return _least_squares("head", merged, heads, data, settings, experts)


@register(RealignMode.JOINT)
def fit_shared(
    merged: DinoVisionTransformer,
    heads: dict[str, DenseHead],
    data: SceneArrays,
    settings: RealignSettings,
    experts: ExpertTargets,
) -> RealignResult:
    """One least-squares map per (block, part) shared by all tasks, folded into every head."""
    return _least_squares("joint", merged, heads, data, settings, experts)

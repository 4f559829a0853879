"""Hyper-parameter selection for a merge: by labelled evaluation or by the task alignment proxy.

TAP (the task alignment proxy) scores a merged encoder by how far its features are from each expert's on a few
unlabelled images, so no decoder has to be evaluated. Each task's distance is divided by the
zero-shot distance (base vs expert), making tasks with large feature norms count no more than
others: TAP = mean_t d(merged, expert_t) / d(base, expert_t), lower is better.

"tap_aligned" is our variant for merges that will be re-aligned: the relative residual left after
the least-squares map, ‖f_expert − (A f_merged + c)‖² / ‖f_expert‖², averaged over tasks. Plain
TAP also counts feature differences that the folded map removes for free (scale, rotation,
offset), so it prefers small alphas; the aligned residual counts only what re-alignment cannot fix.
It costs one Gram-matrix fit per candidate, still without labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from simokit.merge.features import BatchFeatures, Collector, Part, Site, collect, rows
from simokit.models import DinoVisionTransformer
from simokit.recipe import SelectBy

SELECT_CRITERIA = SelectBy.names()  # the order final test rows are written in


def feature_distance(a: list[BatchFeatures], b: list[BatchFeatures], parts: list[Part], metric: str) -> float:
    """Mean per-row distance between two feature sets over `parts`: squared L2 or 1 - cosine."""
    total, count = 0.0, 0
    for fa, fb in zip(a, b, strict=True):
        for part in parts:
            ra, rb = rows(fa, part).double(), rows(fb, part).double()
            if metric == "cosine":
                d = 1.0 - torch.nn.functional.cosine_similarity(ra, rb, dim=1)
            else:
                d = ((ra - rb) ** 2).sum(dim=1)
            total += float(d.sum())
            count += d.numel()
    return total / max(count, 1)


@dataclass
class TapReference:
    """Expert features and zero-shot distances on the TAP images, computed once per study."""

    batches: list[torch.Tensor]
    parts: dict[str, list[Part]]
    expert_features: dict[str, list[BatchFeatures]]
    base_distance: dict[str, float] = field(default_factory=dict)
    metric: str = "l2"
    device: str = "cpu"  # where merged encoders run to be scored

    @property
    def blocks(self) -> list[Site]:
        """Every site any task reads."""
        return sorted({b for ps in self.parts.values() for b, _ in ps})


def tap_reference(
    base: DinoVisionTransformer,
    experts: dict[str, DinoVisionTransformer],
    parts: dict[str, list[Part]],
    batches: list[torch.Tensor],
    metric: str = "l2",
    device: str = "cpu",
    fixed: Collector = collect,
) -> TapReference:
    """Collect expert features and the base's distance to each expert on `batches` (with `fixed`)."""
    ref = TapReference(batches, parts, {}, metric=metric, device=device)
    base_feats = fixed(base, batches, ref.blocks, device)
    for task, enc in experts.items():
        ref.expert_features[task] = fixed(enc, batches, sorted({b for b, _ in parts[task]}), device)
        ref.base_distance[task] = feature_distance(base_feats, ref.expert_features[task], parts[task], metric)
    return ref


def tap_score(merged: DinoVisionTransformer, ref: TapReference) -> dict[str, float]:
    """Per-task TAP of `merged` (distance relative to zero-shot) and their mean under key 'mean'."""
    feats = collect(merged, ref.batches, ref.blocks, ref.device)
    out = {
        t: feature_distance(feats, ref.expert_features[t], ref.parts[t], ref.metric)
        / max(ref.base_distance[t], 1e-12)
        for t in ref.parts
    }
    out["mean"] = sum(out.values()) / len(ref.parts)
    return out


@dataclass
class Candidate:
    """One grid point: its hyper-parameters and every score computed for it."""

    method: str
    hparams: dict[str, Any]
    tap: float = float("nan")
    tap_aligned: float = float("nan")
    val_score: float = float("nan")
    val_score_realigned: float = float("nan")


def pick(candidates: list[Candidate], by: str) -> Candidate:
    """Best candidate by 'tap' / 'tap_aligned' (lowest), 'eval' or 'eval_realigned' (highest score)."""
    if by == "tap":
        return min(candidates, key=lambda c: c.tap)
    if by == "tap_aligned":
        return min(candidates, key=lambda c: c.tap_aligned)
    if by == "eval_realigned":
        return max(candidates, key=lambda c: c.val_score_realigned)
    return max(candidates, key=lambda c: c.val_score)

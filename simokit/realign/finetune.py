"""Learned head re-alignment (SIMO report): fine-tune each frozen head on the merged encoder.

The merged encoder's features are computed once on a small labelled set and cached; each head
is then trained for a few steps on those cached features with its task loss. Unlike the
least-squares maps this needs labels, but no expert encoder, and it can also fix what a linear map
cannot. BatchNorm statistics stay frozen (eval mode) so the head keeps its deployable form.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from simokit.data import SceneArrays, targets_to_tensors
from simokit.merge.features import BatchFeatures, collect, image_batches
from simokit.models import DinoVisionTransformer
from simokit.models.heads import DenseHead
from simokit.realign.base import ExpertTargets, RealignResult, RealignSettings
from simokit.realign.registry import register
from simokit.recipe import RealignMode
from simokit.tasks.losses import task_loss


def finetune_heads(
    merged: DinoVisionTransformer,
    heads: dict[str, DenseHead],
    data: SceneArrays,
    n_images: int = 128,
    steps: int = 100,
    lr: float = 1e-3,
    batch: int = 32,
    seed: int = 0,
) -> RealignResult:
    """Return copies of `heads` fine-tuned on cached merged features of `n_images` labelled images."""
    depth = merged.depth
    sites = sorted({(b % depth, h.cfg.norm) for h in heads.values() for b in h.layers})
    images = list(image_batches(data, n_images, batch))
    feats = [f for chunk in collect(merged, images, sites) for f in _split(chunk)]
    count = len(feats)
    size = (images[0].shape[2], images[0].shape[3])
    rng = np.random.default_rng(seed)
    result = RealignResult(heads={}, images=count)
    for task, head in heads.items():
        tuned = copy.deepcopy(head).eval()
        targets = targets_to_tensors({task: np.asarray(getattr(data, task)[:count])})[task]
        opt = torch.optim.Adam(tuned.parameters(), lr=lr)
        losses = []
        for _ in range(steps):
            idx = np.sort(rng.choice(count, size=min(batch, count), replace=False))
            x = [_stack([feats[i][(b % depth, tuned.cfg.norm)] for i in idx]) for b in tuned.layers]
            loss = task_loss(task, tuned(x, size), targets[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        result.heads[task] = tuned.eval()
        result.stats[task] = {"loss_first": losses[0], "loss_last": float(np.mean(losses[-5:]))}
    return result


@register(RealignMode.FINETUNE)
def fit_finetune(
    merged: DinoVisionTransformer,
    heads: dict[str, DenseHead],
    data: SceneArrays,
    settings: RealignSettings,
    experts: ExpertTargets,
) -> RealignResult:
    """Fine-tune each head on the merged encoder's features (labels, no experts)."""
    return finetune_heads(
        merged,
        heads,
        data,
        n_images=settings.n_images,
        steps=settings.steps,
        lr=settings.lr,
        batch=settings.batch,
    )


def _split(
    chunk: BatchFeatures,
) -> list[BatchFeatures]:
    n = next(iter(chunk.values()))[0].shape[0]
    return [{b: (p[i], c[i]) for b, (p, c) in chunk.items()} for i in range(n)]


def _stack(items: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.stack([p for p, _ in items]), torch.stack([c for _, c in items])

"""Training losses by kind; each takes the head's activated output and the batch's target.

The task table (tasks.spec) names each task's kind; LOSSES resolves the name.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from simokit.errors import ConfigError
from simokit.tasks.spec import IGNORE_INDEX, get_task

Loss = Callable[[Tensor, Tensor], Tensor]


def cross_entropy_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Cross-entropy: pred (B, C, H, W) logits, target (B, H, W) ids with IGNORE_INDEX skipped."""
    return F.cross_entropy(pred, target, ignore_index=IGNORE_INDEX)


def log_l1_loss(pred: Tensor, target: Tensor) -> Tensor:
    """L1 in log space over valid pixels: pred, target (B, 1, H, W) metres, target 0 = invalid."""
    # Log space keeps near and far pixels equally important; metric abs err alone favours far walls.
    valid = target > 0
    return (torch.log(pred.clamp_min(1e-3)) - torch.log(target.clamp_min(1e-3)))[valid].abs().mean()


def cosine_loss(pred: Tensor, target: Tensor) -> Tensor:
    """1 - cosine similarity over pixels with a non-zero target: pred, target (B, 3, H, W)."""
    valid = target.norm(dim=1) > 0.5
    cos = F.cosine_similarity(pred, target, dim=1, eps=1e-6)
    return (1.0 - cos)[valid].mean()


def l1_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error: pred, target (B, 1, H, W)."""
    return (pred - target).abs().mean()


def ssi_l1_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Scale-and-shift-invariant L1: pred, target (B, 1, H, W) inverse depth, target 0 = invalid.

    Per image, pred is aligned to target by the least-squares scale and shift over valid pixels (the
    fit is differentiated through); the mean absolute residual is divided by the target's mean, so
    the loss does not depend on the target's scale either.
    """
    valid = (target > 0).to(torch.float64)
    p, t = pred.to(torch.float64) * valid, target.to(torch.float64) * valid
    dims = (1, 2, 3)
    n = valid.sum(dims)
    sp, st, spp, spt = p.sum(dims), t.sum(dims), (p * p).sum(dims), (p * t).sum(dims)
    # a constant prediction makes both numerator and determinant 0; the epsilon then gives scale 0
    scale = (n * spt - sp * st) / (n * spp - sp * sp + 1e-12 * n * n + 1e-30)
    shift = (st - scale * sp) / n.clamp_min(1.0)
    residual = ((scale[:, None, None, None] * p + shift[:, None, None, None] - t).abs() * valid).sum(dims)
    labelled = n > 0
    per_image = residual[labelled] / st[labelled].clamp_min(1e-12)
    return per_image.mean().to(pred.dtype) if labelled.any() else pred.sum() * 0.0


LOSSES: dict[str, Loss] = {
    "cross_entropy": cross_entropy_loss,
    "log_l1": log_l1_loss,
    "cosine": cosine_loss,
    "l1": l1_loss,
    "ssi_l1": ssi_l1_loss,
}


def loss_of_kind(kind: str) -> Loss:
    """The loss function registered as `kind`; unknown kinds raise ConfigError listing the valid ones."""
    try:
        return LOSSES[kind]
    except KeyError:
        raise ConfigError(f"unknown loss kind '{kind}'; choose from {', '.join(LOSSES)}") from None


def task_loss(task: str, pred: Tensor, target: Tensor) -> Tensor:
    """The loss of `task` (its kind in the task table) between its activated output and target."""
    return loss_of_kind(get_task(task).loss)(pred, target)

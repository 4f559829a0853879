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


LOSSES: dict[str, Loss] = {
    "cross_entropy": cross_entropy_loss,
    "log_l1": log_l1_loss,
    "cosine": cosine_loss,
    "l1": l1_loss,
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

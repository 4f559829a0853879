"""Training losses per task; each takes the head's activated output and the batch's target."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from simokit.tasks.spec import IGNORE_INDEX, get_task


def seg_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Cross-entropy: pred (B, C, H, W) logits, target (B, H, W) ids with IGNORE_INDEX skipped."""
    return F.cross_entropy(pred, target, ignore_index=IGNORE_INDEX)


def depth_loss(pred: Tensor, target: Tensor) -> Tensor:
    """L1 in log space over valid pixels: pred, target (B, 1, H, W) metres, target 0 = invalid."""
    # Log space keeps near and far pixels equally important; metric abs err alone favours far walls.
    valid = target > 0
    return (torch.log(pred.clamp_min(1e-3)) - torch.log(target.clamp_min(1e-3)))[valid].abs().mean()


def normal_loss(pred: Tensor, target: Tensor) -> Tensor:
    """1 - cosine similarity over pixels with a non-zero target: pred, target (B, 3, H, W)."""
    valid = target.norm(dim=1) > 0.5
    cos = F.cosine_similarity(pred, target, dim=1, eps=1e-6)
    return (1.0 - cos)[valid].mean()


def l1_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error: pred, target (B, 1, H, W)."""
    return (pred - target).abs().mean()


def task_loss(task: str, pred: Tensor, target: Tensor) -> Tensor:
    """Dispatch to the loss of `task` (validated against the task registry)."""
    get_task(task)
    if task == "seg":
        return seg_loss(pred, target)
    if task == "depth":
        return depth_loss(pred, target)
    if task == "normal":
        return normal_loss(pred, target)
    return l1_loss(pred, target)

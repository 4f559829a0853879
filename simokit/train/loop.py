"""The optimisation loop shared by base pre-training and expert fine-tuning."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from simokit.data import SceneArrays, hflip, targets_to_tensors, to_tensor_batch
from simokit.recipe import StageConfig


def cosine_lr(step: int, stage: StageConfig) -> float:
    """Learning rate at `step`: linear warm-up to stage.lr, then cosine decay to 1% of it."""
    if step < stage.warmup:
        return stage.lr * (step + 1) / stage.warmup
    t = (step - stage.warmup) / max(stage.steps - stage.warmup, 1)
    return stage.lr * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0))))


def run_stage(
    params: Iterable[Tensor],
    stage: StageConfig,
    loss_fn: Callable[[int], Tensor],
    desc: str,
    progress: bool = True,
) -> list[float]:
    """Run `stage.steps` AdamW steps of `loss_fn(step)`; returns the loss history."""
    params = [p for p in params if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=stage.lr, weight_decay=stage.weight_decay)
    history: list[float] = []
    bar = tqdm(range(stage.steps), desc=desc, disable=not progress, leave=False, dynamic_ncols=True)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, stage)
        loss = loss_fn(step)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"{desc}: loss became {loss.item()} at step {step}; lower the learning rate"
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        history.append(loss.item())
        if step % 10 == 0:
            bar.set_postfix(loss=f"{np.mean(history[-10:]):.4f}")
    bar.close()
    return history


def batches(
    data: SceneArrays, batch: int, tasks: tuple[str, ...], seed: int
) -> Iterator[tuple[Tensor, dict[str, Tensor]]]:
    """Yield random (images (B, 3, H, W), targets) batches forever, half of them mirrored."""
    rng = np.random.default_rng(seed)
    while True:
        idx = np.sort(rng.choice(len(data), size=min(batch, len(data)), replace=False))
        arrays = {"image": np.asarray(data.image[idx])}
        arrays.update({t: np.asarray(getattr(data, t)[idx]) for t in tasks})
        images = to_tensor_batch(arrays["image"])
        targets = targets_to_tensors({t: arrays[t] for t in tasks})
        if rng.random() < 0.5:
            images, targets = hflip(images, targets)
        yield images, targets

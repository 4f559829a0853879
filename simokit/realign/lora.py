"""Representation re-alignment with LoRA (SIMO report), merged back into plain encoder weights.

Low-rank adapters on every block's linear layers (qkv, attention projection, MLP) of the merged
encoder are trained jointly on all tasks' losses through the frozen heads, on a small labelled
set. Each task's loss is divided by its value before training so no task dominates. Because
the adapters sit inside linear layers, W' = W + (α/r)·B·A folds them away exactly and the
deployed encoder is the plain architecture. (The report places adapters after each block; inside
the linear layers they are just as cheap to train and, unlike an adapter on the residual stream
before a LayerNorm, they merge exactly.)
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import Tensor, nn

from simokit.data import SceneArrays, targets_to_tensors, to_tensor_batch
from simokit.models import DinoVisionTransformer, MultiTaskModel
from simokit.models.heads import DenseHead
from simokit.realign.base import ExpertTargets, RealignResult, RealignSettings
from simokit.realign.registry import register
from simokit.recipe import RealignMode
from simokit.tasks.losses import task_loss


class LoRALinear(nn.Module):
    """y = W x + b + (α/r) B A x with W, b frozen; A (r, in) random, B (out, r) zero at the start."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, generator: torch.Generator) -> None:
        super().__init__()
        self.base = base
        self.scale = alpha / rank
        bound = 1.0 / math.sqrt(base.in_features)
        a = (torch.rand(rank, base.in_features, generator=generator) * 2 - 1) * bound
        self.lora_a = nn.Parameter(a)
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank))

    def forward(self, x: Tensor) -> Tensor:
        """(…, in) -> (…, out)."""
        return self.base(x) + (x @ self.lora_a.T @ self.lora_b.T) * self.scale

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        """A plain nn.Linear with the adapter folded into its weight."""
        out = copy.deepcopy(self.base)
        out.weight += self.scale * (self.lora_b @ self.lora_a)
        return out


def _targets(encoder: nn.Module) -> list[tuple[nn.Module, str]]:
    names = ("qkv", "proj", "fc1", "fc2", "w12", "w3")
    return [
        (module, name)
        for module in encoder.modules()
        for name in names
        if isinstance(getattr(module, name, None), nn.Linear)
    ]


def lora_realign(
    merged: DinoVisionTransformer,
    heads: dict[str, DenseHead],
    data: SceneArrays,
    n_images: int = 128,
    steps: int = 100,
    lr: float = 1e-3,
    rank: int = 16,
    batch: int = 16,
    seed: int = 0,
) -> RealignResult:
    """Train LoRA adapters on `n_images` labelled images; the result holds the merged-back encoder."""
    gen = torch.Generator().manual_seed(seed)
    encoder = copy.deepcopy(merged).eval()
    encoder.requires_grad_(False)
    adapters: list[tuple[nn.Module, str, LoRALinear]] = []
    for module, name in _targets(encoder):
        lora = LoRALinear(getattr(module, name), rank, float(rank), gen)
        setattr(module, name, lora)
        adapters.append((module, name, lora))
    frozen_heads = {t: copy.deepcopy(h).eval().requires_grad_(False) for t, h in heads.items()}
    model = MultiTaskModel(encoder, frozen_heads)
    params = [p for _, _, a in adapters for p in (a.lora_a, a.lora_b)]
    opt = torch.optim.Adam(params, lr=lr)
    count = min(n_images, len(data))
    rng = np.random.default_rng(seed)
    probe = np.arange(min(batch, count))  # a fixed batch to report the losses before and after

    @torch.no_grad()
    def probe_losses() -> dict[str, float]:
        out = model(to_tensor_batch(np.asarray(data.image[probe])))
        targets = targets_to_tensors({t: np.asarray(getattr(data, t)[probe]) for t in heads})
        return {t: task_loss(t, out[t], targets[t]).item() for t in heads}

    first = probe_losses()
    for _ in range(steps):
        idx = np.sort(rng.choice(count, size=min(batch, count), replace=False))
        x = to_tensor_batch(np.asarray(data.image[idx]))
        targets = targets_to_tensors({t: np.asarray(getattr(data, t)[idx]) for t in heads})
        out = model(x)
        total = sum(task_loss(t, out[t], targets[t]) / max(first[t], 1e-8) for t in heads)
        opt.zero_grad(set_to_none=True)
        total.backward()  # type: ignore[union-attr]
        opt.step()
    last = probe_losses()
    for module, name, lora in adapters:
        setattr(module, name, lora.merged())
    encoder.requires_grad_(True)
    stats = {t: {"loss_first": first[t], "loss_last": last[t]} for t in heads}
    return RealignResult(heads=dict(heads), stats=stats, images=count, encoder=encoder.eval())


@register(RealignMode.LORA)
def fit_lora(
    merged: DinoVisionTransformer,
    heads: dict[str, DenseHead],
    data: SceneArrays,
    settings: RealignSettings,
    experts: ExpertTargets,
) -> RealignResult:
    """LoRA adapters trained on all task losses (labels, no experts), merged back into the encoder."""
    return lora_realign(
        merged,
        heads,
        data,
        n_images=settings.n_images,
        steps=settings.steps,
        lr=settings.lr,
        batch=settings.batch,
    )

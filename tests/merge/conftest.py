"""Shared fixtures: small random encoders with official DINOv2 key names and shapes."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

StateDict = dict[str, torch.Tensor]


def vit_state(seed: int, dim: int = 8, depth: int = 2, mlp: int = 16, tokens: int = 5) -> StateDict:
    """A ViT-shaped encoder state dict (patch 2, 1 register token) with an integer buffer."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g)

    sd: StateDict = {
        "cls_token": r(1, 1, dim),
        "pos_embed": r(1, tokens, dim),
        "mask_token": r(1, dim),
        "register_tokens": r(1, 1, dim),
        "patch_embed.proj.weight": r(dim, 3, 2, 2),
        "patch_embed.proj.bias": r(dim),
    }
    for i in range(depth):
        p = f"blocks.{i}."
        sd |= {
            p + "norm1.weight": r(dim),
            p + "norm1.bias": r(dim),
            p + "attn.qkv.weight": r(3 * dim, dim),
            p + "attn.qkv.bias": r(3 * dim),
            p + "attn.proj.weight": r(dim, dim),
            p + "attn.proj.bias": r(dim),
            p + "ls1.gamma": r(dim),
            p + "norm2.weight": r(dim),
            p + "norm2.bias": r(dim),
            p + "mlp.fc1.weight": r(mlp, dim),
            p + "mlp.fc1.bias": r(mlp),
            p + "mlp.fc2.weight": r(dim, mlp),
            p + "mlp.fc2.bias": r(dim),
            p + "ls2.gamma": r(dim),
        }
    sd |= {"norm.weight": r(dim), "norm.bias": r(dim), "num_batches_tracked": torch.tensor(7)}
    return sd


def fine_tuned(base: StateDict, seed: int, scale: float = 0.1) -> StateDict:
    """An expert: base plus seeded noise; integer buffers change too, to show they are not merged."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, value in base.items():
        if value.is_floating_point():
            out[key] = value + scale * torch.randn(value.shape, generator=g)
        else:
            out[key] = value + 100
    return out


@pytest.fixture
def vit_family() -> Callable[[int], tuple[StateDict, list[StateDict]]]:
    """Return a factory: T -> (base, T experts) with ViT shapes."""

    def make(num_experts: int) -> tuple[StateDict, list[StateDict]]:
        base = vit_state(0)
        return base, [fine_tuned(base, seed=10 + t) for t in range(num_experts)]

    return make

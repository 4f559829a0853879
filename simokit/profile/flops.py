"""Analytic FLOPs of a ViT encoder with 1x1-conv heads (multiply-adds counted as 2 FLOPs)."""

from __future__ import annotations

from typing import Any


def vit_flops(encoder: dict[str, Any], height: int, width: int, head_channels: list[int]) -> float:
    """FLOPs per image of a VitConfig dict at height x width plus linear heads reading the last block."""
    p, d, depth = encoder["patch_size"], encoder["embed_dim"], encoder["depth"]
    patches = (height // p) * (width // p)
    n = 1 + encoder.get("num_register_tokens", 0) + patches
    hidden = int(d * encoder.get("mlp_ratio", 4.0))
    mlp = 3 * d * (2 * hidden // 3) if encoder.get("ffn") == "swiglu" else 2 * d * hidden
    per_block = n * (4 * d * d + mlp) + 2 * n * n * d  # qkv + proj + MLP, then QKᵀ and attention·V
    patch_embed = patches * d * 3 * p * p
    heads = sum(patches * d * k for k in head_channels)
    return 2.0 * (depth * per_block + patch_embed + heads)

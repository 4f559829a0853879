"""Infer a DINOv2 ViT's architecture from the tensor shapes of an official-layout state dict."""

from __future__ import annotations

import math
import re

from torch import Tensor

from simokit.errors import CheckpointError, ConfigError
from simokit.models.layers import swiglu_hidden_features
from simokit.models.vit import VitConfig

HEAD_DIM = 64  # every official DINOv2 variant uses 64-wide attention heads
_BLOCK = re.compile(r"^blocks\.(\d+)\.")


def _block_count(state: dict[str, Tensor]) -> int:
    indices = {int(m.group(1)) for k in state if (m := _BLOCK.match(k))}
    if not indices or indices != set(range(max(indices) + 1)):
        raise CheckpointError(f"encoder blocks are not numbered 0..N-1 (found {sorted(indices)[:6]}...)")
    return max(indices) + 1


def _ffn(state: dict[str, Tensor], dim: int) -> tuple[str, float]:
    if "blocks.0.mlp.fc1.weight" in state:
        return "mlp", state["blocks.0.mlp.fc1.weight"].shape[0] / dim
    if "blocks.0.mlp.w12.weight" in state:
        hidden = state["blocks.0.mlp.w12.weight"].shape[0] // 2
        if swiglu_hidden_features(4 * dim) == hidden:
            return "swiglu", 4.0
        raise CheckpointError(f"SwiGLU hidden width {hidden} does not follow the DINOv2 rule for dim {dim}")
    raise CheckpointError("encoder has neither mlp.fc1 nor mlp.w12 in block 0; not a DINOv2 ViT")


def infer_vit_config(state: dict[str, Tensor], layer_norm_eps: float = 1e-6) -> VitConfig:
    """The VitConfig whose encoder has exactly the shapes of `state` (official DINOv2 key names).

    Register models get the official antialiased, offset-free position interpolation; models without
    registers the 0.1-offset bicubic one, as the official hub builds them.
    """
    for key in ("cls_token", "pos_embed", "patch_embed.proj.weight"):
        if key not in state:
            raise CheckpointError(f"encoder lacks '{key}'; not a DINOv2 ViT state dict")
    dim = state["cls_token"].shape[-1]
    patch = state["patch_embed.proj.weight"]
    grid = math.isqrt(state["pos_embed"].shape[1] - 1)
    if grid * grid != state["pos_embed"].shape[1] - 1:
        raise CheckpointError(
            f"pos_embed has {state['pos_embed'].shape[1] - 1} patch positions, not a square"
        )
    registers = state["register_tokens"].shape[1] if "register_tokens" in state else 0
    ffn, ratio = _ffn(state, dim)
    try:
        return VitConfig(
            img_size=grid * patch.shape[-1],
            patch_size=patch.shape[-1],
            in_chans=patch.shape[1],
            embed_dim=dim,
            depth=_block_count(state),
            num_heads=max(dim // HEAD_DIM, 1),
            mlp_ratio=ratio,
            qkv_bias="blocks.0.attn.qkv.bias" in state,
            proj_bias="blocks.0.attn.proj.bias" in state,
            ffn_bias=any(k.startswith("blocks.0.mlp.") and k.endswith(".bias") for k in state),
            ffn=ffn,
            init_values=1.0 if "blocks.0.ls1.gamma" in state else None,
            num_register_tokens=registers,
            interpolate_antialias=registers > 0,
            interpolate_offset=0.0 if registers > 0 else 0.1,
            layer_norm_eps=layer_norm_eps,
        )
    except ConfigError as err:
        raise CheckpointError(f"encoder shapes give no valid ViT: {err}") from None


def official_encoder(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """The encoder keys of an official-layout state dict, `mask_token` in simokit's (1, D) shape."""
    keep = ("cls_token", "pos_embed", "register_tokens", "mask_token", "patch_embed.", "blocks.", "norm.")
    out = {k: v for k, v in state.items() if k.startswith(keep)}
    if "mask_token" in out and out["mask_token"].dim() == 1:
        out["mask_token"] = out["mask_token"][None]
    if "mask_token" not in out and "cls_token" in out:  # only masked pre-training reads it
        out["mask_token"] = out["cls_token"].new_zeros(1, out["cls_token"].shape[-1])
    return out


def variant_name(dim: int) -> str:
    """The official variant name of an encoder width ("custom (D)" for others)."""
    return {384: "ViT-S/14", 768: "ViT-B/14", 1024: "ViT-L/14", 1536: "ViT-g/14"}.get(dim, f"custom ({dim})")

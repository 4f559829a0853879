"""The named DINOv2 ViT variants (S, B, L, g, with registers, and tiny demo/test sizes) and their builders."""

from __future__ import annotations

import dataclasses
from typing import Any

from simokit.errors import ConfigError
from simokit.models.vit.config import VitConfig
from simokit.models.vit.encoder import DinoVisionTransformer

VARIANTS: dict[str, VitConfig] = {
    "vits14": VitConfig(embed_dim=384, depth=12, num_heads=6),
    "vitb14": VitConfig(embed_dim=768, depth=12, num_heads=12),
    "vitl14": VitConfig(embed_dim=1024, depth=24, num_heads=16),
    "vitg14": VitConfig(embed_dim=1536, depth=40, num_heads=24, ffn="swiglu"),
    "vitmicro14": VitConfig(embed_dim=192, depth=6, num_heads=3, img_size=112),
    "vitnano14": VitConfig(embed_dim=48, depth=2, num_heads=2, img_size=56),
}
# the official register models were trained with antialiased, offset-free position interpolation
for _name in ("vits14", "vitb14", "vitl14", "vitg14"):
    VARIANTS[f"{_name}_reg"] = dataclasses.replace(
        VARIANTS[_name], num_register_tokens=4, interpolate_antialias=True, interpolate_offset=0.0
    )
del _name


def build_encoder(name_or_config: str | VitConfig, **overrides: Any) -> DinoVisionTransformer:
    """Build a randomly initialised encoder from a variant name or a VitConfig, with field overrides."""
    if isinstance(name_or_config, str):
        if name_or_config not in VARIANTS:
            raise ConfigError(f"unknown encoder '{name_or_config}'; choose from {', '.join(VARIANTS)}")
        config = VARIANTS[name_or_config]
    else:
        config = name_or_config
    if overrides:
        valid = {f.name for f in dataclasses.fields(VitConfig)}
        unknown = sorted(set(overrides) - valid)
        if unknown:
            raise ConfigError(f"unknown encoder options {unknown}; valid options are {sorted(valid)}")
        config = dataclasses.replace(config, **overrides)
    return DinoVisionTransformer(config)


def vits14(**overrides: Any) -> DinoVisionTransformer:
    """ViT-S/14 (384 wide, 12 blocks, 6 heads)."""
    return build_encoder("vits14", **overrides)


def vitb14(**overrides: Any) -> DinoVisionTransformer:
    """ViT-B/14 (768 wide, 12 blocks, 12 heads)."""
    return build_encoder("vitb14", **overrides)


def vitl14(**overrides: Any) -> DinoVisionTransformer:
    """ViT-L/14 (1024 wide, 24 blocks, 16 heads)."""
    return build_encoder("vitl14", **overrides)


def vitg14(**overrides: Any) -> DinoVisionTransformer:
    """ViT-g/14 (1536 wide, 40 blocks, 24 heads, fused SwiGLU)."""
    return build_encoder("vitg14", **overrides)


def vits14_reg(**overrides: Any) -> DinoVisionTransformer:
    """ViT-S/14 with 4 register tokens."""
    return build_encoder("vits14_reg", **overrides)


def vitb14_reg(**overrides: Any) -> DinoVisionTransformer:
    """ViT-B/14 with 4 register tokens."""
    return build_encoder("vitb14_reg", **overrides)


def vitl14_reg(**overrides: Any) -> DinoVisionTransformer:
    """ViT-L/14 with 4 register tokens."""
    return build_encoder("vitl14_reg", **overrides)


def vitg14_reg(**overrides: Any) -> DinoVisionTransformer:
    """ViT-g/14 with 4 register tokens."""
    return build_encoder("vitg14_reg", **overrides)


def vitmicro14(**overrides: Any) -> DinoVisionTransformer:
    """Micro ViT/14 for demos (192 wide, 6 blocks, 3 heads, 112 px native)."""
    return build_encoder("vitmicro14", **overrides)


def vitnano14(**overrides: Any) -> DinoVisionTransformer:
    """Nano ViT/14 for tests (48 wide, 2 blocks, 2 heads, 56 px native)."""
    return build_encoder("vitnano14", **overrides)

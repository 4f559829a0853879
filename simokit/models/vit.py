"""DINOv2-compatible Vision Transformer whose state-dict keys match the official hub checkpoints."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

import torch
from torch import Tensor, nn

from simokit.config import from_dict as config_from_dict
from simokit.errors import ConfigError, ShapeError
from simokit.models.layers import (
    FFN_KINDS,
    Block,
    PatchEmbed,
    check_image_shape,
    interpolate_pos_embed,
    traceable_pos_embed,
)

# Official configs name the fused SwiGLU "swiglufused"; both spellings build the same module.
_FFN_ALIASES = {"swiglufused": "swiglu"}


@dataclass(frozen=True, kw_only=True)
class VitConfig:
    """Architecture of a DINOv2 ViT; `img_size` only fixes the size of the stored position embedding."""

    img_size: int = 518
    patch_size: int = 14
    in_chans: int = 3
    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    proj_bias: bool = True
    ffn_bias: bool = True
    ffn: str = "mlp"
    init_values: float | None = 1e-5
    num_register_tokens: int = 0
    interpolate_antialias: bool = False
    interpolate_offset: float = 0.1
    layer_norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        """Validate field values; raise ConfigError naming the bad field."""
        ffn = _FFN_ALIASES.get(self.ffn, self.ffn)
        if ffn not in FFN_KINDS:
            raise ConfigError(f"VitConfig.ffn is '{self.ffn}'; choose from {', '.join(FFN_KINDS)}")
        object.__setattr__(self, "ffn", ffn)
        for name in ("img_size", "patch_size", "in_chans", "embed_dim", "depth", "num_heads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"VitConfig.{name} must be a positive integer, got {value!r}")
        if self.embed_dim % self.num_heads != 0:
            raise ConfigError(
                f"VitConfig.embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}; "
                "pick a head count that divides it"
            )
        if self.img_size % self.patch_size != 0:
            raise ConfigError(
                f"VitConfig.img_size {self.img_size} is not a multiple of patch_size {self.patch_size}; "
                f"use {self.img_size // self.patch_size * self.patch_size or self.patch_size}"
            )
        if self.num_register_tokens < 0:
            raise ConfigError(f"VitConfig.num_register_tokens must be >= 0, got {self.num_register_tokens}")
        if self.mlp_ratio <= 0:
            raise ConfigError(f"VitConfig.mlp_ratio must be positive, got {self.mlp_ratio}")

    @property
    def grid_size(self) -> int:
        """Patches per side of the stored position embedding."""
        return self.img_size // self.patch_size

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict of all fields."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VitConfig:
        """Build a config from `to_dict()` output; unknown, missing or mistyped keys raise ConfigError."""
        return config_from_dict(cls, data, where="VitConfig")


class VitFeatures(TypedDict):
    """Output of `forward_features`: normalised tokens split by kind, pre-norm tokens and the masks."""

    x_norm_clstoken: Tensor
    x_norm_regtokens: Tensor
    x_norm_patchtokens: Tensor
    x_prenorm: Tensor
    masks: Tensor | None


class DinoVisionTransformer(nn.Module):
    """DINOv2 ViT backbone: (B, 3, H, W) with H, W multiples of the patch size -> (B, D) CLS embedding."""

    def __init__(self, config: VitConfig) -> None:
        super().__init__()
        self.config = config
        self.patch_size = config.patch_size
        self.embed_dim = config.embed_dim
        self.num_register_tokens = config.num_register_tokens
        self.patch_embed = PatchEmbed(config.patch_size, config.in_chans, config.embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, config.grid_size**2 + 1, config.embed_dim))
        self.register_tokens: nn.Parameter | None = None
        if config.num_register_tokens > 0:
            self.register_tokens = nn.Parameter(torch.zeros(1, config.num_register_tokens, config.embed_dim))
        self.blocks = nn.ModuleList(
            Block(
                config.embed_dim,
                config.num_heads,
                mlp_ratio=config.mlp_ratio,
                qkv_bias=config.qkv_bias,
                proj_bias=config.proj_bias,
                ffn_bias=config.ffn_bias,
                ffn=config.ffn,
                init_values=config.init_values,
                layer_norm_eps=config.layer_norm_eps,
            )
            for _ in range(config.depth)
        )
        self.norm = nn.LayerNorm(config.embed_dim, eps=config.layer_norm_eps)
        self.mask_token = nn.Parameter(torch.zeros(1, config.embed_dim))
        # set by the ONNX exporter for graphs with dynamic height/width (see traceable_pos_embed)
        self.dynamic_size_export = False
        self.init_weights()

    @property
    def depth(self) -> int:
        """Number of transformer blocks."""
        return len(self.blocks)

    def init_weights(self) -> None:
        """Initialise parameters the way DINOv2 does before training (LayerScale keeps init_values)."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        if self.register_tokens is not None:
            nn.init.normal_(self.register_tokens, std=1e-6)
        nn.init.zeros_(self.mask_token)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def prepare_tokens(self, x: Tensor, masks: Tensor | None = None) -> Tensor:
        """Embed patches, apply masks, add CLS, positions and registers: (B, C, H, W) -> (B, 1 + R + N, D)."""
        check_image_shape(x, self.config.in_chans, self.patch_size)
        # no int(): under ONNX tracing the sizes stay graph values, so a dynamic-size export stays dynamic
        grid_h, grid_w = x.shape[2] // self.patch_size, x.shape[3] // self.patch_size
        tokens = self.patch_embed(x)
        if masks is not None:
            if tuple(masks.shape) != tuple(tokens.shape[:2]):
                raise ShapeError(
                    f"masks have shape {tuple(masks.shape)} but the image has {tuple(tokens.shape[:2])} "
                    "(batch, patches); build one flag per patch in row-major order"
                )
            mask_token = self.mask_token.to(tokens.dtype).unsqueeze(0)
            tokens = torch.where(masks.to(torch.bool).unsqueeze(-1), mask_token, tokens)
        tokens = torch.cat((self.cls_token.expand(tokens.shape[0], -1, -1), tokens), dim=1)
        resample = traceable_pos_embed if self.dynamic_size_export else interpolate_pos_embed
        tokens = tokens + resample(
            self.pos_embed,
            grid_h,
            grid_w,
            offset=self.config.interpolate_offset,
            antialias=self.config.interpolate_antialias,
        ).to(tokens.dtype)
        if self.register_tokens is not None:
            # registers go after CLS and carry no position embedding, as in the official model
            registers = self.register_tokens.expand(tokens.shape[0], -1, -1)
            tokens = torch.cat((tokens[:, :1], registers, tokens[:, 1:]), dim=1)
        return tokens

    def _encode(self, x: Tensor, masks: Tensor | None) -> tuple[Tensor, Tensor]:
        """Tokens before and after the final norm: (B, C, H, W) -> 2 x (B, 1 + R + N, D)."""
        tokens = self.prepare_tokens(x, masks)
        for block in self.blocks:
            tokens = block(tokens)
        return tokens, self.norm(tokens)

    def forward_features(self, x: Tensor, masks: Tensor | None = None) -> VitFeatures:
        """Run all blocks; `masks` (B, N) bool swaps those patch embeddings for `mask_token`.

        Returns x_norm_clstoken (B, D), x_norm_regtokens (B, R, D), x_norm_patchtokens (B, N, D),
        x_prenorm (B, 1 + R + N, D) and the masks.
        """
        tokens, normed = self._encode(x, masks)
        first_patch = 1 + self.num_register_tokens
        return {
            "x_norm_clstoken": normed[:, 0],
            "x_norm_regtokens": normed[:, 1:first_patch],
            "x_norm_patchtokens": normed[:, first_patch:],
            "x_prenorm": tokens,
            "masks": masks,
        }

    def resolve_block_indices(self, n: int | Sequence[int]) -> list[int]:
        """Turn `n` (last-n count or block indices, negatives allowed) into non-negative block indices."""
        depth = self.depth
        if isinstance(n, int):
            if not 1 <= n <= depth:
                raise ConfigError(
                    f"cannot take the last {n} blocks of a {depth}-block encoder; use 1..{depth}"
                )
            return list(range(depth - n, depth))
        indices = []
        for index in n:
            if not -depth <= int(index) < depth:
                raise ConfigError(
                    f"block index {index} is out of range for a {depth}-block encoder; "
                    f"use {-depth}..{depth - 1}"
                )
            indices.append(int(index) % depth)
        if not indices:
            raise ConfigError("no block indices given; pass an int or a non-empty sequence of indices")
        return indices

    def get_intermediate_layers(
        self,
        x: Tensor,
        n: int | Sequence[int] = 1,
        reshape: bool = False,
        return_class_token: bool = False,
        norm: bool = True,
    ) -> tuple[Any, ...]:
        """Outputs of selected blocks, in the order of `n`: (B, 3, H, W) -> per block (B, N, D).

        With reshape=True each patch output is (B, D, H/p, W/p); with return_class_token=True each
        entry is a (patches, cls (B, D)) pair. Register tokens are dropped.
        """
        wanted = self.resolve_block_indices(n)
        tokens = self.prepare_tokens(x)
        taken: dict[int, Tensor] = {}
        last = max(wanted)
        # blocks after the deepest requested one cannot change any output, so they are skipped
        for index, block in enumerate(self.blocks[: last + 1]):
            tokens = block(tokens)
            if index in wanted:
                taken[index] = tokens
        outputs = [taken[i] for i in wanted]
        if norm:
            outputs = [self.norm(out) for out in outputs]
        class_tokens = [out[:, 0] for out in outputs]
        patches = [out[:, 1 + self.num_register_tokens :] for out in outputs]
        if reshape:
            B = x.shape[0]
            grid_h, grid_w = x.shape[2] // self.patch_size, x.shape[3] // self.patch_size
            patches = [p.reshape(B, grid_h, grid_w, -1).permute(0, 3, 1, 2).contiguous() for p in patches]
        if return_class_token:
            return tuple(zip(patches, class_tokens, strict=True))
        return tuple(patches)

    def forward(self, x: Tensor) -> Tensor:
        """Normalised CLS embedding: (B, 3, H, W) -> (B, D)."""
        return self._encode(x, None)[1][:, 0]


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

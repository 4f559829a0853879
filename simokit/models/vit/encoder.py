"""DINOv2-compatible Vision Transformer whose state-dict keys match the official hub checkpoints."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypedDict

import torch
from torch import Tensor, nn

from simokit.errors import ConfigError, ShapeError
from simokit.models.layers import (
    Block,
    PatchEmbed,
    check_image_shape,
    interpolate_pos_embed,
    traceable_pos_embed,
)
from simokit.models.vit.config import VitConfig


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
        # a position table already resampled to the one grid a fixed-size export is traced at (set only
        # by export.single_expert): ONNX has no antialiased bicubic resize, so it is done once, eagerly
        self.fixed_pos_embed: Tensor | None = None
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
        if self.fixed_pos_embed is not None:
            positions = self.fixed_pos_embed
        else:
            resample = traceable_pos_embed if self.dynamic_size_export else interpolate_pos_embed
            positions = resample(
                self.pos_embed,
                grid_h,
                grid_w,
                offset=self.config.interpolate_offset,
                antialias=self.config.interpolate_antialias,
            )
        tokens = tokens + positions.to(tokens.dtype)
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

    def block_sites(
        self, x: Tensor, sites: Sequence[tuple[int, bool]]
    ) -> dict[tuple[int, bool], tuple[Tensor, Tensor]]:
        """Features at each (block, after final norm?) site: (B, 3, H, W) -> {site: ((B, D, h, w), (B, D))}.

        One pass serves heads that read the same block with and without the final LayerNorm.
        """
        taken = self._block_outputs(x, self.resolve_block_indices(sorted({b for b, _ in sites})))
        out: dict[tuple[int, bool], tuple[Tensor, Tensor]] = {}
        for index, normed in sites:
            out_tokens = taken[int(index) % self.depth]
            if normed:
                out_tokens = self.norm(out_tokens)
            patch = self._patch_map(out_tokens[:, 1 + self.num_register_tokens :], x)
            out[(index, normed)] = (patch, out_tokens[:, 0])
        return out

    def _block_outputs(self, x: Tensor, wanted: list[int]) -> dict[int, Tensor]:
        """Tokens after each block in `wanted` (non-negative indices): (B, 3, H, W) -> {block: (B, T, D)}."""
        tokens = self.prepare_tokens(x)
        taken: dict[int, Tensor] = {}
        # blocks after the deepest requested one cannot change any output, so they are skipped
        for index, block in enumerate(self.blocks[: max(wanted) + 1]):
            tokens = block(tokens)
            if index in wanted:
                taken[index] = tokens
        return taken

    def _patch_map(self, patches: Tensor, x: Tensor) -> Tensor:
        """Patch tokens (B, N, D) of image `x` as a map (B, D, H/p, W/p)."""
        grid_h, grid_w = x.shape[2] // self.patch_size, x.shape[3] // self.patch_size
        return patches.reshape(x.shape[0], grid_h, grid_w, -1).permute(0, 3, 1, 2).contiguous()

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
        taken = self._block_outputs(x, wanted)
        outputs = [taken[i] for i in wanted]
        if norm:
            outputs = [self.norm(out) for out in outputs]
        class_tokens = [out[:, 0] for out in outputs]
        patches = [out[:, 1 + self.num_register_tokens :] for out in outputs]
        if reshape:
            patches = [self._patch_map(p, x) for p in patches]
        if return_class_token:
            return tuple(zip(patches, class_tokens, strict=True))
        return tuple(patches)

    def forward(self, x: Tensor) -> Tensor:
        """Normalised CLS embedding: (B, 3, H, W) -> (B, D)."""
        return self._encode(x, None)[1][:, 0]

"""Dinov2DPTHead: the DPT head of DINOv2's depth evaluation, SIMO's DPT heads and Hugging Face's DPT.

All three reassemble four blocks (optionally reading CLS through a readout), fuse them coarse to fine
and predict through a small output stack; their differences are options of this one kind:

- readout: "project" (Linear(2C -> C) + GELU on [patch, cls]), "add" (cls added to each patch) or "ignore"
  (default: "project" when use_cls is set, else "ignore")
- post_channels: the four reassembly widths, shallow to deep (default C/8, C/4, C/2, C)
- output: "depth" (1 channel: relu(x) + min_depth, clamped to max_depth when given) or "seg" (K channels;
  the default when out_channels > 1)
- residual_bias, fusion_bn: whether the fusion residual convs carry a bias / a BatchNorm
- project: whether a 3x3 conv + ReLU follows the fusion (DINOv2 and SIMO always; HF `add_projection`)
- native: "input" when the source resizes its prediction to the image, "head" when it returns the head's
  own resolution (32 x ceil(grid / 2)), with `patch_size` the encoder patch; either way the prediction
  reaches `out_size` by bilinear interpolation (align_corners=False), the identity at the native size.

`HeadConfig.dpt_features` is the fusion width (256 in the official heads, 128 in SIMO's small ones).
"""

from __future__ import annotations

import math
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from simokit.errors import ConfigError, ShapeError
from simokit.models.heads.activation import apply_activation
from simokit.models.heads.base import DenseHead, Features
from simokit.models.heads.config import DPT_NUM_LAYERS, HeadConfig
from simokit.models.heads.dinov2_dpt_blocks import (
    READOUTS,
    RESAMPLE_FACTORS,
    Fusion,
    Reassemble,
    depth_output,
    seg_output,
)
from simokit.models.heads.fold import FeatureConsumer

DEFAULT_OPTIONS: dict[str, Any] = {
    "readout": None,
    "post_channels": None,
    "output": None,
    "min_depth": 0.0,
    "max_depth": None,
    "residual_bias": False,
    "fusion_bn": False,
    "project": True,
    "native": "input",
    "patch_size": 14,
}
_CHOICES = {
    "readout": READOUTS,
    "output": ("depth", "seg"),
    "native": ("input", "head"),
}


def dpt_options(cfg: HeadConfig, embed_dim: int) -> dict[str, Any]:
    """The head's options with defaults filled in; unknown keys or bad values raise ConfigError."""
    unknown = sorted(set(cfg.options) - set(DEFAULT_OPTIONS))
    if unknown:
        raise ConfigError(
            f"dinov2_dpt head options {unknown} are unknown; valid options: {', '.join(DEFAULT_OPTIONS)}"
        )
    derived = {
        "readout": "project" if cfg.use_cls else "ignore",
        "output": "depth" if cfg.out_channels == 1 else "seg",
    }
    opts = {**DEFAULT_OPTIONS, **derived, **cfg.options}
    for key, choices in _CHOICES.items():
        if opts[key] not in choices:
            raise ConfigError(f"dinov2_dpt option {key} is '{opts[key]}'; choose from {', '.join(choices)}")
    if opts["post_channels"] is None:
        opts["post_channels"] = [max(embed_dim // 2 ** (3 - i), 1) for i in range(DPT_NUM_LAYERS)]
    channels = [int(c) for c in opts["post_channels"]]
    if len(channels) != DPT_NUM_LAYERS or min(channels) < 1:
        raise ConfigError(f"dinov2_dpt option post_channels must be 4 positive widths, got {channels}")
    opts["post_channels"] = channels
    if len(cfg.layers) != DPT_NUM_LAYERS:
        raise ConfigError(
            f"a dinov2_dpt head reads {DPT_NUM_LAYERS} encoder blocks, but layers is {cfg.layers}"
        )
    if cfg.use_cls != (opts["readout"] != "ignore"):
        raise ConfigError(
            f"dinov2_dpt readout '{opts['readout']}' {'ignores' if opts['readout'] == 'ignore' else 'reads'} "
            f"the CLS token but use_cls is {cfg.use_cls}"
        )
    if opts["output"] == "depth" and cfg.out_channels != 1:
        raise ConfigError(f"a dinov2_dpt depth output has 1 channel, but out_channels is {cfg.out_channels}")
    return opts


class Dinov2DPTHead(DenseHead):
    """DPT over 4 blocks ((patch, cls) pairs, shallow to deep) -> (B, K, H, W) at out_size."""

    def __init__(self, cfg: HeadConfig, embed_dim: int) -> None:
        super().__init__(cfg, embed_dim)
        self.opts = dpt_options(cfg, embed_dim)
        width, opts = cfg.dpt_features, self.opts
        self.reassemble = nn.ModuleList(
            Reassemble(embed_dim, c, f, opts["readout"])
            for c, f in zip(opts["post_channels"], RESAMPLE_FACTORS, strict=True)
        )
        self.convs = nn.ModuleList(
            nn.Conv2d(c, width, kernel_size=3, padding=1, bias=False) for c in opts["post_channels"]
        )
        bias, bn = bool(opts["residual_bias"]), bool(opts["fusion_bn"])
        # fusion[0] fuses the deepest block, which has no skip input
        self.fusion = nn.ModuleList(Fusion(width, i > 0, bias, bn) for i in range(DPT_NUM_LAYERS))
        self.project = nn.Conv2d(width, width, kernel_size=3, padding=1) if opts["project"] else None
        if opts["output"] == "depth":
            self.out = depth_output(width)
        else:
            self.out = seg_output(width, cfg.out_channels)

    def native_size(self, height: int, width: int) -> tuple[int, int]:
        """The input size, or the head's own resolution 32 * ceil(grid / 2) when the source returns that."""
        if self.opts["native"] == "input":
            return height, width
        patch = int(self.opts["patch_size"])
        return 32 * math.ceil(height // patch / 2), 32 * math.ceil(width // patch / 2)

    def output_layer(self) -> nn.Conv2d:
        """The final 1x1 conv of the output stack."""
        last = self.out[-1]
        if not isinstance(last, nn.Conv2d):
            raise TypeError("dinov2_dpt output stack ends in an unexpected layer")
        return last

    def consumers(self) -> list[FeatureConsumer]:
        """Per block: the readout Linear (patch and CLS halves), else the 1x1 projection."""
        out: list[FeatureConsumer] = []
        dim = self.embed_dim
        for layer, module in zip(self.cfg.layers, self.reassemble, strict=True):
            stage = cast(Reassemble, module)
            first: nn.Linear | nn.Conv2d = stage.readout if stage.readout is not None else stage.project
            out.append(FeatureConsumer(layer, "patch", first, slice(0, dim)))
            if self.cfg.use_cls:
                out.append(FeatureConsumer(layer, "cls", first, slice(dim, 2 * dim)))
        return out

    def _check(self, feats: Features) -> None:
        if len(feats) != DPT_NUM_LAYERS:
            raise ShapeError(
                f"dinov2_dpt head expects features of 4 blocks {self.cfg.layers}, got {len(feats)}"
            )
        for patch, cls in feats:
            if patch.dim() != 4 or patch.shape[1] != self.embed_dim or cls.shape[-1] != self.embed_dim:
                raise ShapeError(
                    f"dinov2_dpt head expects (B, {self.embed_dim}, h, w) maps with (B, {self.embed_dim}) "
                    f"CLS tokens, got {tuple(patch.shape)} and {tuple(cls.shape)}"
                )

    def forward(self, feats: Features, out_size: tuple[int, int]) -> Tensor:
        """Predict: 4 x ((B, C, h, w), (B, C)) -> (B, K, H, W) with (H, W) = out_size."""
        self._check(feats)
        maps = [
            conv(stage(patch, cls))
            for (patch, cls), stage, conv in zip(feats, self.reassemble, self.convs, strict=True)
        ]
        x = self.fusion[0](maps[-1])
        for i in range(1, DPT_NUM_LAYERS):
            x = self.fusion[i](x, maps[-(i + 1)])
        if self.project is not None:
            x = F.relu(self.project(x))
        x = self.out(x)
        if self.opts["output"] == "depth":
            x = F.relu(x) + float(self.opts["min_depth"])
            if self.opts["max_depth"] is not None:
                x = torch.clamp(x, min=float(self.opts["min_depth"]), max=float(self.opts["max_depth"]))
        x = F.interpolate(x, size=out_size, mode="bilinear", align_corners=False)
        return apply_activation(x, self.cfg.activation)

"""DepthAnythingHead (kind "da_dpt"): the DPT decoder of Depth Anything V1 and V2, relative or metric.

Four blocks are read (V1: the last four; V2: spread over the depth), after the encoder's final
LayerNorm. Each branch is optionally mixed with CLS by a Linear + GELU readout, projected by a 1x1
conv to its width, resampled (4x, 2x, 1x, 1/2x), refined and fused deep to shallow; the output convs
bring the map to the patch grid times the patch size, then ReLU (relative, affine-invariant inverse
depth) or sigmoid (metric) and a factor `max_depth`.

Options: widths (4 branch widths), use_bn, version ("v1" returns the input size, "v2" the input size
floored to the patch size), output ("relu" or "sigmoid"), max_depth (the output factor, 1 for
relative models), patch_size, hidden (output conv width). `dpt_features` is the fusion width.
"""

from __future__ import annotations

from typing import Any, cast

import torch.nn.functional as F
from torch import Tensor, nn

from simokit.errors import ConfigError
from simokit.models.heads.base import DenseHead, Features
from simokit.models.heads.config import HeadConfig
from simokit.models.heads.da_blocks import FusionBlock, make_scratch, resize_layer
from simokit.models.heads.fold import FeatureConsumer

SCALES = (4.0, 2.0, 1.0, 0.5)
VERSIONS = ("v1", "v2")
OUTPUTS = ("relu", "sigmoid")
_DEFAULTS: dict[str, Any] = {
    "use_bn": False,
    "version": "v2",
    "output": "relu",
    "max_depth": 1.0,
    "patch_size": 14,
    "hidden": 32,
}


def da_options(options: dict[str, Any]) -> dict[str, Any]:
    """The head's options with defaults filled in; unknown keys or bad values raise ConfigError."""
    allowed = ("widths", *_DEFAULTS)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(f"da_dpt head: unknown options {unknown}; valid ones are {', '.join(allowed)}")
    opts = {**_DEFAULTS, **options}
    widths = opts.get("widths")
    if not isinstance(widths, list | tuple) or len(widths) != len(SCALES) or min(widths) < 1:
        raise ConfigError(f"da_dpt head: options.widths must be 4 positive branch widths, got {widths}")
    opts["widths"] = tuple(int(w) for w in widths)
    if opts["version"] not in VERSIONS:
        raise ConfigError(f"da_dpt head: version '{opts['version']}'; choose from {', '.join(VERSIONS)}")
    if opts["output"] not in OUTPUTS:
        raise ConfigError(f"da_dpt head: output '{opts['output']}'; choose from {', '.join(OUTPUTS)}")
    if not float(opts["max_depth"]) > 0:
        raise ConfigError(f"da_dpt head: max_depth must be positive, got {opts['max_depth']}")
    if int(opts["patch_size"]) < 1 or int(opts["hidden"]) < 1:
        raise ConfigError("da_dpt head: patch_size and hidden must be positive")
    return opts


class DepthAnythingHead(DenseHead):
    """Depth Anything DPT head: 4 x ((B, C, h, w), (B, C)) -> (B, 1, H, W) depth or inverse depth."""

    def __init__(self, cfg: HeadConfig, embed_dim: int) -> None:
        super().__init__(cfg, embed_dim)
        if len(cfg.layers) != len(SCALES) or cfg.out_channels != 1 or cfg.activation != "none":
            raise ConfigError(
                "a da_dpt head reads 4 blocks, predicts 1 channel and applies its own output activation "
                f"(activation 'none'); got layers {cfg.layers}, out_channels {cfg.out_channels}, "
                f"activation '{cfg.activation}'"
            )
        opts = da_options(cfg.options)
        self.version: str = opts["version"]
        self.output: str = opts["output"]
        self.max_depth = float(opts["max_depth"])
        self.patch_size = int(opts["patch_size"])
        widths = opts["widths"]
        self.projects = nn.ModuleList(nn.Conv2d(embed_dim, w, kernel_size=1) for w in widths)
        self.resize_layers = nn.ModuleList(resize_layer(w, s) for w, s in zip(widths, SCALES, strict=True))
        if cfg.use_cls:
            self.readout_projects = nn.ModuleList(
                nn.Sequential(nn.Linear(2 * embed_dim, embed_dim), nn.GELU()) for _ in widths
            )
        self.scratch = make_scratch(widths, cfg.dpt_features, bool(opts["use_bn"]), int(opts["hidden"]))

    def native_size(self, height: int, width: int) -> tuple[int, int]:
        """V1 resizes its output to the input size; V2 returns the patch grid times the patch size."""
        if self.version == "v1":
            return height, width
        return height // self.patch_size * self.patch_size, width // self.patch_size * self.patch_size

    def output_layer(self) -> nn.Conv2d:
        """The final 1x1 conv before the output activation."""
        return cast(nn.Conv2d, cast(nn.Sequential, self.scratch.output_conv2)[2])

    def consumers(self) -> list[FeatureConsumer]:
        """Per block, the 1x1 projection (or, with CLS readout, the readout Linear over [patch, cls])."""
        out: list[FeatureConsumer] = []
        dim = self.embed_dim
        for i, layer in enumerate(self.cfg.layers):
            if self.cfg.use_cls:
                linear = cast(nn.Linear, cast(nn.Sequential, self.readout_projects[i])[0])
                out.append(FeatureConsumer(layer, "patch", linear, slice(0, dim)))
                out.append(FeatureConsumer(layer, "cls", linear, slice(dim, 2 * dim)))
            else:
                out.append(FeatureConsumer(layer, "patch", cast(nn.Conv2d, self.projects[i]), slice(0, dim)))
        return out

    def _branches(self, feats: Features) -> list[Tensor]:
        """Per block: readout, project and resample to the four DPT scales."""
        out = []
        for i, x in enumerate(self._layer_inputs(feats)):
            if self.cfg.use_cls:
                x = self.readout_projects[i](x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            out.append(self.resize_layers[i](self.projects[i](x)))
        return out

    def forward(self, feats: Features, out_size: tuple[int, int]) -> Tensor:
        """Predict (B, 1, H, W) at (H, W) = out_size.

        The source's map at the patch grid times the patch size is resized bilinearly with aligned
        corners to out_size (an exact identity when they agree), as V1's forward and V2's inference do.
        """
        grid = (feats[0][0].shape[-2], feats[0][0].shape[-1])
        scratch = self.scratch
        maps = [getattr(scratch, f"layer{i + 1}_rn")(x) for i, x in enumerate(self._branches(feats))]
        blocks = [cast(FusionBlock, getattr(scratch, f"refinenet{i}")) for i in range(1, 5)]
        path = blocks[3](maps[3], size=maps[2].shape[-2:])
        path = blocks[2](path, maps[2], size=maps[1].shape[-2:])
        path = blocks[1](path, maps[1], size=maps[0].shape[-2:])
        path = blocks[0](path, maps[0])
        x = cast(nn.Module, scratch.output_conv1)(path)
        size = (grid[0] * self.patch_size, grid[1] * self.patch_size)
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        x = cast(nn.Module, scratch.output_conv2)(x)
        x = F.relu(x) if self.output == "relu" else x.sigmoid()
        if self.max_depth != 1.0:
            x = self.max_depth * x
        return F.interpolate(x, size=out_size, mode="bilinear", align_corners=True)

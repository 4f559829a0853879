"""LinearDepthHead: the DINOv2 linear depth head (1x1 conv over concatenated blocks, bins or regression).

The source upsamples the concatenated [patch, CLS] block features 4x (bilinear, corners not aligned),
applies one 1x1 conv and turns its outputs into metres: with bins, a normalised distribution over
bin centres whose expectation is the depth; without, a ReLU (or a sigmoid scaled by max_depth). The
conv runs before the upsampling here: a 1x1 conv commutes exactly with bilinear resizing (weights
summing to one), and the conv then sees 16x fewer pixels. The depth map at 4x the patch grid is then
optionally clamped to the depth range and bilinearly resized to the requested size.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from simokit.errors import ConfigError
from simokit.models.heads.base import DenseHead, Features
from simokit.models.heads.config import HeadConfig
from simokit.models.heads.fold import FeatureConsumer

BINS_STRATEGIES = ("UD", "SID")
NORM_STRATEGIES = ("linear", "softmax", "sigmoid")
_LINEAR_NORM_EPS = 0.1  # added to the ReLU'd bin scores before normalising, as the source does
DEFAULT_OPTIONS: dict[str, Any] = {
    "min_depth": 0.001,
    "max_depth": 10.0,
    "bins": 256,
    "bins_strategy": "UD",
    "norm_strategy": "linear",
    "scale_up": False,
    "upsample": 4,
    "clamp": False,
}


def _number(options: dict[str, Any], key: str) -> float:
    value = options[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"linear_depth option '{key}' must be a number, got {value!r}")
    return float(value)


def _count(options: dict[str, Any], key: str, low: int) -> int:
    value = options[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"linear_depth option '{key}' must be an integer >= {low}, got {value!r}")
    return value


def _choice(options: dict[str, Any], key: str, choices: tuple[str, ...]) -> str:
    value = options[key]
    if value not in choices:
        raise ConfigError(f"linear_depth option '{key}' is {value!r}; choose from {', '.join(choices)}")
    return str(value)


def _flag(options: dict[str, Any], key: str) -> bool:
    value = options[key]
    if not isinstance(value, bool):
        raise ConfigError(f"linear_depth option '{key}' must be true or false, got {value!r}")
    return value


def depth_options(cfg: HeadConfig) -> dict[str, Any]:
    """The head's options with defaults filled in, checked (unknown keys and bad values raise)."""
    unknown = sorted(set(cfg.options) - set(DEFAULT_OPTIONS))
    if unknown:
        raise ConfigError(
            f"unknown linear_depth option(s) {', '.join(unknown)}; known: {', '.join(DEFAULT_OPTIONS)}"
        )
    options = {**DEFAULT_OPTIONS, **cfg.options}
    low, high, bins = _number(options, "min_depth"), _number(options, "max_depth"), _count(options, "bins", 0)
    if not low < high:
        raise ConfigError(f"linear_depth needs min_depth < max_depth, got {low}, {high}")
    if bins == 1:
        raise ConfigError("linear_depth option 'bins' is 1; use 0 for regression or at least 2 bins")
    return {
        "min_depth": low,
        "max_depth": high,
        "bins": bins,
        "bins_strategy": _choice(options, "bins_strategy", BINS_STRATEGIES),
        "norm_strategy": _choice(options, "norm_strategy", NORM_STRATEGIES),
        "scale_up": _flag(options, "scale_up"),
        "upsample": _count(options, "upsample", 1),
        "clamp": _flag(options, "clamp"),
    }


def bin_centres(min_depth: float, max_depth: float, bins: int, strategy: str) -> Tensor:
    """The depth of each bin: uniform over the range ("UD"), or 10**linspace ("SID", as the source)."""
    if strategy == "SID":
        return torch.logspace(min_depth, max_depth, bins)
    return torch.linspace(min_depth, max_depth, bins)


class LinearDepthHead(DenseHead):
    """DINOv2 linear depth head: 1x1 conv on concatenated [patch, (CLS)] blocks -> metres at out_size."""

    centres: Tensor

    def __init__(self, cfg: HeadConfig, embed_dim: int) -> None:
        super().__init__(cfg, embed_dim)
        if cfg.out_channels != 1:
            raise ConfigError(f"a linear_depth head predicts 1 channel (metres), not {cfg.out_channels}")
        if cfg.activation != "none" or cfg.batch_norm:
            raise ConfigError(
                "a linear_depth head has no BatchNorm and maps to metres itself; "
                "use activation 'none', batch_norm false and the options bins/scale_up"
            )
        self.options = depth_options(cfg)
        in_channels = embed_dim * (2 if cfg.use_cls else 1) * len(cfg.layers)
        bins = self.options["bins"]
        self.conv = nn.Conv2d(in_channels, bins if bins else 1, kernel_size=1)
        centres = bin_centres(
            self.options["min_depth"], self.options["max_depth"], bins, self.options["bins_strategy"]
        )
        # derived from the options, so kept out of the state dict
        self.register_buffer("centres", centres, persistent=False)

    def output_layer(self) -> nn.Conv2d:
        """The 1x1 conv (bin scores, or the depth before its ReLU / sigmoid)."""
        return self.conv

    def consumers(self) -> list[FeatureConsumer]:
        """One consumer per (layer, part), all feeding the single 1x1 conv."""
        return self._cat_consumers(self.conv, None)

    def to_depth(self, scores: Tensor) -> Tensor:
        """Conv outputs -> metres: (B, bins or 1, h, w) -> (B, 1, h, w)."""
        opt = self.options
        if not opt["bins"]:
            if opt["scale_up"]:
                return torch.sigmoid(scores) * opt["max_depth"]
            return F.relu(scores) + opt["min_depth"]
        if opt["norm_strategy"] == "softmax":
            prob = torch.softmax(scores, dim=1)
        else:
            prob = (
                F.relu(scores) + _LINEAR_NORM_EPS
                if opt["norm_strategy"] == "linear"
                else torch.sigmoid(scores)
            )
            prob = prob / prob.sum(dim=1, keepdim=True)
        return (prob * self.centres.to(prob.dtype)[None, :, None, None]).sum(dim=1, keepdim=True)

    def forward(self, feats: Features, out_size: tuple[int, int]) -> Tensor:
        """Predict metres: per layer ((B, C, h, w), (B, C)) -> (B, 1, H, W) with (H, W) = out_size."""
        x = self.conv(torch.cat(self._layer_inputs(feats), dim=1))
        up = self.options["upsample"]
        if up > 1:
            x = F.interpolate(
                x, size=(x.shape[-2] * up, x.shape[-1] * up), mode="bilinear", align_corners=False
            )
        depth = self.to_depth(x)
        if self.options["clamp"]:
            depth = depth.clamp(self.options["min_depth"], self.options["max_depth"])
        return F.interpolate(depth, size=out_size, mode="bilinear", align_corners=False)

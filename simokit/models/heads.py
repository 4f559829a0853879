"""Dense task heads on ViT features, and folding a linear feature map into their first linear layers."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from simokit.config import from_dict as config_from_dict
from simokit.errors import ConfigError, ShapeError

HEAD_KINDS = ("linear", "dpt")
ACTIVATIONS = ("none", "softplus", "exp", "normalize", "sigmoid")
_EXP_CLAMP = 12.0  # exp(12) m is far beyond any scene; the clamp keeps FP16 exports finite
DPT_NUM_LAYERS = 4
_NORMALIZE_EPS = 1e-6

Features = list[tuple[Tensor, Tensor]]


@dataclass(frozen=True)
class HeadConfig:
    """What a head predicts and which encoder blocks it reads (indices may be negative)."""

    kind: str
    out_channels: int
    activation: str = "none"
    layers: tuple[int, ...] = (-1,)
    use_cls: bool = False
    batch_norm: bool = False
    dpt_features: int = 64

    def __post_init__(self) -> None:
        """Validate fields; lists from JSON become tuples."""
        object.__setattr__(self, "layers", tuple(int(i) for i in self.layers))
        if self.kind not in HEAD_KINDS:
            raise ConfigError(f"HeadConfig.kind is '{self.kind}'; choose from {', '.join(HEAD_KINDS)}")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(
                f"HeadConfig.activation is '{self.activation}'; choose from {', '.join(ACTIVATIONS)}"
            )
        if self.out_channels <= 0:
            raise ConfigError(f"HeadConfig.out_channels must be positive, got {self.out_channels}")
        if not self.layers:
            raise ConfigError("HeadConfig.layers is empty; give at least one encoder block index, e.g. (-1,)")
        if self.kind == "dpt" and len(self.layers) != DPT_NUM_LAYERS:
            raise ConfigError(
                f"a dpt head reads {DPT_NUM_LAYERS} encoder blocks but layers is {self.layers}; "
                "use e.g. (2, 5, 8, 11) for a 12-block encoder"
            )
        if self.dpt_features < 2:
            raise ConfigError(f"HeadConfig.dpt_features must be at least 2, got {self.dpt_features}")

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict of all fields."""
        data = dataclasses.asdict(self)
        data["layers"] = list(self.layers)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HeadConfig:
        """Build a config from `to_dict()` output; unknown, missing or mistyped keys raise ConfigError."""
        return config_from_dict(cls, data, where="HeadConfig")


@dataclass
class FeatureConsumer:
    """The first linear layer that reads one part of one encoder block's features.

    `conv` input channels `in_slice` carry that part, after `norm` (a BatchNorm2d) when it is not None.
    """

    layer: int
    part: str
    conv: nn.Conv2d | nn.Linear
    in_slice: slice
    norm: nn.BatchNorm2d | None = None


def apply_activation(x: Tensor, activation: str) -> Tensor:
    """Apply a head's output activation over channels: (B, C, H, W) -> (B, C, H, W)."""
    if activation == "softplus":
        return F.softplus(x)
    if activation == "exp":
        # Log-space output: a linear layer moves log-depth by O(1) per unit, metric depth spans 1..60 m.
        return torch.exp(x.clamp(-_EXP_CLAMP, _EXP_CLAMP))
    if activation == "sigmoid":
        return torch.sigmoid(x)
    if activation == "normalize":
        return F.normalize(x, dim=1, eps=_NORMALIZE_EPS)
    return x


@torch.no_grad()
def _fold_batchnorm_slice(conv: nn.Conv2d | nn.Linear, norm: nn.BatchNorm2d, sl: slice) -> None:
    """Move eval-mode BatchNorm of channels `sl` into `conv` and make those BN channels the identity."""
    if norm.running_mean is None or norm.running_var is None:
        raise ConfigError(
            "cannot fold a BatchNorm2d without running statistics; build it with track_running_stats=True"
        )
    std = torch.sqrt(norm.running_var[sl].double() + norm.eps)
    gamma = norm.weight[sl].double() if norm.weight is not None else torch.ones_like(std)
    beta = norm.bias[sl].double() if norm.bias is not None else torch.zeros_like(std)
    scale = gamma / std
    shift = beta - norm.running_mean[sl].double() * scale
    _fold_affine(conv, sl, torch.diag(scale), shift)
    # mean 0 and var 1 - eps make (x - mean) / sqrt(var + eps) == x; weight 1 and bias 0 keep it so
    norm.running_mean[sl] = 0.0
    norm.running_var[sl] = 1.0 - norm.eps
    if norm.weight is not None:
        norm.weight[sl] = 1.0
    if norm.bias is not None:
        norm.bias[sl] = 0.0


@torch.no_grad()
def _fold_affine(conv: nn.Conv2d | nn.Linear, sl: slice, A: Tensor, c: Tensor) -> None:  # noqa: N803
    """Make `conv` on input f compute what it computed on A f + c over input channels `sl`."""
    if conv.bias is None:
        conv.bias = nn.Parameter(torch.zeros(conv.weight.shape[0], dtype=conv.weight.dtype))
    weight = conv.weight[:, sl].double()  # (O, k, ...) with optional kernel taps
    taps = weight.reshape(weight.shape[0], weight.shape[1], -1)
    # every kernel tap sees the constant c, so the bias collects c through all taps
    conv.bias += torch.einsum("okt,k->o", taps, c.double()).to(conv.bias.dtype)
    folded = torch.einsum("okt,kj->ojt", taps, A.double()).reshape(weight.shape)
    conv.weight[:, sl] = folded.to(conv.weight.dtype)


def fold_linear_map(consumer: FeatureConsumer, A: Tensor, c: Tensor) -> None:  # noqa: N803
    """Fold f -> A f + c (A (C, C), c (C,)) into the consumer so the head then takes f directly.

    Afterwards the head fed f equals the old head fed A f + c (W' = W A, b' = W c + b); a BatchNorm
    in front is folded into the conv first, which is exact for BatchNorm in eval mode.
    """
    conv, sl = consumer.conv, consumer.in_slice
    width = len(range(conv.weight.shape[1])[sl])
    if tuple(A.shape) != (width, width) or tuple(c.shape) != (width,):
        raise ShapeError(
            f"fold_linear_map needs A of shape ({width}, {width}) and c of shape ({width},) for the "
            f"'{consumer.part}' channels of layer {consumer.layer}, got {tuple(A.shape)} and {tuple(c.shape)}"
        )
    # zero padding would feed 0 rather than A 0 + c at the border, so only unpadded convs fold exactly
    if isinstance(conv, nn.Conv2d) and (conv.groups != 1 or conv.padding not in ((0, 0), "valid")):
        raise ConfigError("fold_linear_map only folds ungrouped, unpadded convolutions (e.g. 1x1)")
    A = A.to(conv.weight.device)
    c = c.to(conv.weight.device)
    if consumer.norm is not None:
        _fold_batchnorm_slice(conv, consumer.norm, sl)
    _fold_affine(conv, sl, A, c)


class DenseHead(nn.Module):
    """Base of all heads: per-layer (patch (B, C, h, w), cls (B, C)) features -> (B, K, H, W)."""

    def __init__(self, cfg: HeadConfig, embed_dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed_dim = embed_dim

    @property
    def layers(self) -> tuple[int, ...]:
        """Encoder block indices this head reads, in the order it expects them."""
        return self.cfg.layers

    def consumers(self) -> list[FeatureConsumer]:
        """First linear layers fed by each (layer, part) of the encoder features."""
        raise NotImplementedError

    def output_layer(self) -> nn.Conv2d:
        """The last conv, whose outputs go through the activation (used to initialise its bias)."""
        raise NotImplementedError

    def _layer_inputs(self, feats: Features) -> list[Tensor]:
        """Per layer, the patch map with the CLS token broadcast and concatenated when use_cls is set."""
        if len(feats) != len(self.cfg.layers):
            raise ShapeError(
                f"head expects features of {len(self.cfg.layers)} blocks {self.cfg.layers}, got {len(feats)}"
            )
        inputs = []
        for patch, cls in feats:
            if patch.dim() != 4 or patch.shape[1] != self.embed_dim:
                raise ShapeError(
                    f"head expects patch maps (B, {self.embed_dim}, h, w), got {tuple(patch.shape)}; "
                    "call get_intermediate_layers with reshape=True"
                )
            if self.cfg.use_cls:
                patch = torch.cat((patch, cls[:, :, None, None].expand_as(patch)), dim=1)
            inputs.append(patch)
        return inputs

    def _cat_consumers(self, conv: nn.Conv2d, norm: nn.BatchNorm2d | None) -> list[FeatureConsumer]:
        """Consumers for a conv reading all layers concatenated as [patch, (cls)] per layer."""
        out: list[FeatureConsumer] = []
        offset = 0
        for layer in self.cfg.layers:
            for part in ("patch", "cls") if self.cfg.use_cls else ("patch",):
                out.append(FeatureConsumer(layer, part, conv, slice(offset, offset + self.embed_dim), norm))
                offset += self.embed_dim
        return out


class LinearHead(DenseHead):
    """DINOv2 linear-evaluation style head: [BatchNorm] + 1x1 conv on concatenated features, upsampled."""

    def __init__(self, cfg: HeadConfig, embed_dim: int) -> None:
        super().__init__(cfg, embed_dim)
        in_channels = embed_dim * (2 if cfg.use_cls else 1) * len(cfg.layers)
        self.bn: nn.Module = nn.BatchNorm2d(in_channels) if cfg.batch_norm else nn.Identity()
        self.conv = nn.Conv2d(in_channels, cfg.out_channels, kernel_size=1)

    def output_layer(self) -> nn.Conv2d:
        """The 1x1 conv (it is both the first and the last layer)."""
        return self.conv

    def consumers(self) -> list[FeatureConsumer]:
        """One consumer per (layer, part), all feeding the single 1x1 conv."""
        norm = self.bn if isinstance(self.bn, nn.BatchNorm2d) else None
        return self._cat_consumers(self.conv, norm)

    def forward(self, feats: Features, out_size: tuple[int, int]) -> Tensor:
        """Predict per pixel: per layer ((B, C, h, w), (B, C)) -> (B, K, H, W) with (H, W) = out_size."""
        x = torch.cat(self._layer_inputs(feats), dim=1)
        x = self.conv(self.bn(x))
        x = F.interpolate(x, size=out_size, mode="bilinear", align_corners=False)
        return apply_activation(x, self.cfg.activation)


class _Reassemble(nn.Module):
    """Project one block's features to the DPT width, then resample: (B, C, h, w) -> (B, F, s*h, s*w)."""

    def __init__(self, in_channels: int, features: int, scale: float, batch_norm: bool) -> None:
        super().__init__()
        self.norm: nn.Module = nn.BatchNorm2d(in_channels) if batch_norm else nn.Identity()
        self.proj = nn.Conv2d(in_channels, features, kernel_size=1)
        self.resample: nn.Module
        if scale > 1:
            factor = int(scale)
            self.resample = nn.ConvTranspose2d(features, features, kernel_size=factor, stride=factor)
        elif scale < 1:
            self.resample = nn.Conv2d(features, features, kernel_size=3, stride=2, padding=1)
        else:
            self.resample = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """Normalise, project and resample: (B, C, h, w) -> (B, F, h', w')."""
        return self.resample(self.proj(self.norm(x)))


class _ResidualConvUnit(nn.Module):
    """Pre-activation residual unit of two 3x3 convs: (B, F, h, w) -> (B, F, h, w)."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(features, features, kernel_size=3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        """x + conv2(relu(conv1(relu(x))))."""
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class _FusionBlock(nn.Module):
    """Merge a coarser path with a skip feature and upsample: (B, F, h, w) -> (B, F, H', W')."""

    def __init__(self, features: int, has_skip: bool) -> None:
        super().__init__()
        # the deepest block has no skip input; leaving its unit out avoids parameters without gradients
        self.skip_unit: nn.Module | None = _ResidualConvUnit(features) if has_skip else None
        self.unit = _ResidualConvUnit(features)
        self.out_conv = nn.Conv2d(features, features, kernel_size=1)

    def forward(self, x: Tensor, skip: Tensor | None, size: tuple[int, int]) -> Tensor:
        """Add the refined skip (if any), refine, resize to `size`, project."""
        if skip is not None and self.skip_unit is not None:
            x = x + self.skip_unit(skip)
        x = F.interpolate(self.unit(x), size=size, mode="bilinear", align_corners=True)
        return self.out_conv(x)


class DPTHead(DenseHead):
    """Compact DPT decoder over 4 encoder blocks (shallow to deep at 4x, 2x, 1x, 1/2x the patch grid)."""

    SCALES = (4.0, 2.0, 1.0, 0.5)

    def __init__(self, cfg: HeadConfig, embed_dim: int) -> None:
        super().__init__(cfg, embed_dim)
        width = cfg.dpt_features
        in_channels = embed_dim * (2 if cfg.use_cls else 1)
        self.reassemble = nn.ModuleList(
            _Reassemble(in_channels, width, scale, cfg.batch_norm) for scale in self.SCALES
        )
        last = len(self.SCALES) - 1
        self.fusion = nn.ModuleList(_FusionBlock(width, has_skip=i != last) for i in range(len(self.SCALES)))
        self.head = nn.Sequential(
            nn.Conv2d(width, width // 2, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width // 2, cfg.out_channels, kernel_size=1),
        )

    def output_layer(self) -> nn.Conv2d:
        """The final 1x1 conv of the prediction head."""
        last = self.head[-1]
        if not isinstance(last, nn.Conv2d):
            raise TypeError("DPT head ends in an unexpected layer")
        return last

    def consumers(self) -> list[FeatureConsumer]:
        """Each layer's patch (and CLS) channels feed that layer's 1x1 projection conv."""
        out: list[FeatureConsumer] = []
        for layer, module in zip(self.cfg.layers, self.reassemble, strict=True):
            stage = cast(_Reassemble, module)
            norm = stage.norm if isinstance(stage.norm, nn.BatchNorm2d) else None
            out.append(FeatureConsumer(layer, "patch", stage.proj, slice(0, self.embed_dim), norm))
            if self.cfg.use_cls:
                cls_slice = slice(self.embed_dim, 2 * self.embed_dim)
                out.append(FeatureConsumer(layer, "cls", stage.proj, cls_slice, norm))
        return out

    def forward(self, feats: Features, out_size: tuple[int, int]) -> Tensor:
        """Predict per pixel: 4 x ((B, C, h, w), (B, C)) -> (B, K, H, W) with (H, W) = out_size."""
        maps = [stage(x) for stage, x in zip(self.reassemble, self._layer_inputs(feats), strict=True)]
        path: Tensor | None = None
        # fuse from the deepest (coarsest) block up to the shallowest (finest)
        for i in reversed(range(len(maps))):
            if i > 0:
                size = (maps[i - 1].shape[-2], maps[i - 1].shape[-1])
            else:
                size = (2 * maps[0].shape[-2], 2 * maps[0].shape[-1])
            block = self.fusion[i]
            path = block(maps[i], None, size) if path is None else block(path, maps[i], size)
        x = self.head(path)
        x = F.interpolate(x, size=out_size, mode="bilinear", align_corners=False)
        return apply_activation(x, self.cfg.activation)


def build_head(cfg: HeadConfig, embed_dim: int) -> DenseHead:
    """Build the head `cfg.kind` for an encoder of width `embed_dim`."""
    if embed_dim <= 0:
        raise ConfigError(f"embed_dim must be positive, got {embed_dim}")
    if cfg.kind == "dpt":
        return DPTHead(cfg, embed_dim)
    return LinearHead(cfg, embed_dim)


__all__ = [
    "ACTIVATIONS",
    "HEAD_KINDS",
    "DPTHead",
    "DenseHead",
    "FeatureConsumer",
    "HeadConfig",
    "LinearHead",
    "apply_activation",
    "build_head",
    "fold_linear_map",
]

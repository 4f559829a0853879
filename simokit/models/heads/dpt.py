"""DPTHead: a compact DPT decoder that reassembles four encoder blocks at four scales and fuses them."""

from __future__ import annotations

from typing import cast

import torch.nn.functional as F
from torch import Tensor, nn

from simokit.models.heads.activation import apply_activation
from simokit.models.heads.base import DenseHead, Features
from simokit.models.heads.config import HeadConfig
from simokit.models.heads.fold import FeatureConsumer


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

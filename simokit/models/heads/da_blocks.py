"""Building blocks of the Depth Anything DPT head, named as in its checkpoints so they load directly.

The refinement path: per-branch 3x3 width convs (`layer{1..4}_rn`), then four fusion blocks of
pre-activation residual units (optionally with BatchNorm after each conv), each upsampling bilinearly
with aligned corners and ending in a 1x1 conv; then the output convs.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class ResidualUnit(nn.Module):
    """x + conv2(relu(conv1(relu(x)))), with BatchNorm after each conv when `use_bn`."""

    def __init__(self, features: int, use_bn: bool) -> None:
        super().__init__()
        self.use_bn = use_bn
        self.conv1 = nn.Conv2d(features, features, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(features, features, kernel_size=3, padding=1)
        if use_bn:
            self.bn1 = nn.BatchNorm2d(features)
            self.bn2 = nn.BatchNorm2d(features)

    def forward(self, x: Tensor) -> Tensor:
        """(B, F, h, w) -> (B, F, h, w)."""
        out = self.conv1(F.relu(x))
        if self.use_bn:
            out = self.bn1(out)
        out = self.conv2(F.relu(out))
        if self.use_bn:
            out = self.bn2(out)
        return out + x


class FusionBlock(nn.Module):
    """Add the refined skip (if any) to the path, refine, upsample to `size` (else 2x), project 1x1."""

    def __init__(self, features: int, use_bn: bool) -> None:
        super().__init__()
        # checkpoint names: every block holds both units even when (the deepest) it has no skip
        self.resConfUnit1 = ResidualUnit(features, use_bn)
        self.resConfUnit2 = ResidualUnit(features, use_bn)
        self.out_conv = nn.Conv2d(features, features, kernel_size=1)

    def forward(self, x: Tensor, skip: Tensor | None = None, size: tuple[int, int] | None = None) -> Tensor:
        """(B, F, h, w) [+ skip (B, F, h, w)] -> (B, F, H', W')."""
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        if size is None:
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=True)
        else:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        return self.out_conv(x)


def make_scratch(widths: tuple[int, ...], features: int, use_bn: bool, hidden: int) -> nn.Module:
    """The `scratch` module: width convs, fusion blocks and the output convs (before the activation)."""
    scratch = nn.Module()
    for i, width in enumerate(widths, start=1):
        scratch.add_module(f"layer{i}_rn", nn.Conv2d(width, features, kernel_size=3, padding=1, bias=False))
    for i in range(1, len(widths) + 1):
        scratch.add_module(f"refinenet{i}", FusionBlock(features, use_bn))
    scratch.output_conv1 = nn.Conv2d(features, features // 2, kernel_size=3, padding=1)
    scratch.output_conv2 = nn.Sequential(
        nn.Conv2d(features // 2, hidden, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(hidden, 1, kernel_size=1),
    )
    return scratch


def resize_layer(width: int, scale: float) -> nn.Module:
    """Resample one branch: transposed conv for 4x and 2x, identity at 1x, 3x3 stride-2 conv for 1/2x."""
    if scale > 1:
        return nn.ConvTranspose2d(width, width, kernel_size=int(scale), stride=int(scale))
    if scale < 1:
        return nn.Conv2d(width, width, kernel_size=3, stride=2, padding=1)
    return nn.Identity()

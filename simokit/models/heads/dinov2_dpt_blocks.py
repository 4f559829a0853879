"""Building blocks of the DINOv2-style DPT head: CLS readout, reassembly, residual units and fusion."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

READOUTS = ("project", "add", "ignore")
# reassembly resamples the four blocks, shallow to deep, to 4x, 2x, 1x and 1/2x the patch grid
RESAMPLE_FACTORS = (4, 2, 1, 0)


def split_linear(weight: Tensor, bias: Tensor | None, patch: Tensor, cls: Tensor, dim: int) -> Tensor:
    """A layer over [patch, cls] channels, the CLS half computed once per image, not once per pixel.

    `weight` is (O, 2C) or (O, 2C, 1, 1); patch is (B, C, h, w), cls (B, C); returns (B, O, h, w). Equal
    to applying the layer to the concatenation with CLS broadcast to every position.
    """
    w = weight.reshape(weight.shape[0], -1)
    out = F.conv2d(patch, w[:, :dim, None, None])
    shift = cls @ w[:, dim:].t()
    if bias is not None:
        shift = shift + bias
    return out + shift[:, :, None, None]


class Reassemble(nn.Module):
    """One block's tokens to a feature map at one scale: readout, 1x1 projection, resampling.

    With readout "project" a Linear(2C -> C) + GELU reads [patch, cls]; with "add" the CLS token is
    added to every patch, which the 1x1 projection computes by reading [patch, cls] with the same
    weights on both halves (so each half can be re-aligned on its own); "ignore" drops the CLS token.
    """

    def __init__(self, dim: int, channels: int, factor: int, readout: str) -> None:
        super().__init__()
        self.dim = dim
        self.readout_type = readout
        self.readout = nn.Linear(2 * dim, dim) if readout == "project" else None
        self.project = nn.Conv2d(2 * dim if readout == "add" else dim, channels, kernel_size=1)
        self.resize: nn.Module
        if factor > 1:
            self.resize = nn.ConvTranspose2d(channels, channels, kernel_size=factor, stride=factor)
        elif factor == 1:
            self.resize = nn.Identity()
        else:
            self.resize = nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=1)

    def forward(self, patch: Tensor, cls: Tensor) -> Tensor:
        """(B, C, h, w), (B, C) -> (B, c, s*h, s*w)."""
        if self.readout is not None:
            x = F.gelu(split_linear(self.readout.weight, self.readout.bias, patch, cls, self.dim))
            x = self.project(x)
        elif self.readout_type == "add":
            x = split_linear(self.project.weight, self.project.bias, patch, cls, self.dim)
        else:
            x = self.project(patch)
        return self.resize(x)


class ResidualUnit(nn.Module):
    """Pre-activation residual unit: x + [bn](conv2(relu([bn](conv1(relu(x))))))."""

    def __init__(self, width: int, bias: bool, batch_norm: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, kernel_size=3, padding=1, bias=bias)
        self.conv2 = nn.Conv2d(width, width, kernel_size=3, padding=1, bias=bias)
        self.bn1: nn.Module = nn.BatchNorm2d(width) if batch_norm else nn.Identity()
        self.bn2: nn.Module = nn.BatchNorm2d(width) if batch_norm else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """(B, F, h, w) -> (B, F, h, w)."""
        y = self.bn1(self.conv1(F.relu(x)))
        return x + self.bn2(self.conv2(F.relu(y)))


class Fusion(nn.Module):
    """Fuse the coarser path with a skip map (resized to the path when they differ), then upsample 2x.

    The deepest block has no skip input and so no first unit.
    """

    def __init__(self, width: int, has_skip: bool, bias: bool, batch_norm: bool) -> None:
        super().__init__()
        self.unit1 = ResidualUnit(width, bias, batch_norm) if has_skip else None
        self.unit2 = ResidualUnit(width, bias, batch_norm)
        self.out = nn.Conv2d(width, width, kernel_size=1)

    def forward(self, x: Tensor, skip: Tensor | None = None) -> Tensor:
        """(B, F, h, w) [+ skip (B, F, h', w')] -> (B, F, 2h, 2w)."""
        if skip is not None and self.unit1 is not None:
            # resizing to the same size is the identity; doing it always keeps exported graphs size-free
            skip = F.interpolate(skip, size=x.shape[-2:], mode="bilinear", align_corners=False)
            x = x + self.unit1(skip)
        x = self.unit2(x)
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=True)
        return self.out(x)


def depth_output(width: int) -> nn.Sequential:
    """The DPT depth output: 3x3 conv to F/2, 2x upsampling, 3x3 conv to 32, ReLU, 1x1 conv to one channel."""
    return nn.Sequential(
        nn.Conv2d(width, width // 2, kernel_size=3, padding=1),
        nn.Upsample(scale_factor=2.0, mode="bilinear", align_corners=True),
        nn.Conv2d(width // 2, 32, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 1, kernel_size=1),
    )


def seg_output(width: int, out_channels: int) -> nn.Sequential:
    """The DPT dense output: 3x3 conv (no bias), BatchNorm, ReLU, (dropout, a no-op), 1x1 conv to K."""
    return nn.Sequential(
        nn.Conv2d(width, width, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.Identity(),
        nn.Conv2d(width, out_channels, kernel_size=1),
    )

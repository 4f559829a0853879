"""Resampling the stored square position embedding to another patch grid (eager and ONNX-traceable)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from simokit.errors import ConfigError

CUBIC_A = -0.75  # PyTorch's bicubic kernel coefficient


def interpolate_pos_embed(
    pos_embed: Tensor, grid_h: int, grid_w: int, *, offset: float, antialias: bool
) -> Tensor:
    """Resample a square patch position embedding bicubically: (1, 1 + M*M, D) -> (1, 1 + h*w, D)."""
    num_stored = pos_embed.shape[1] - 1
    M = math.isqrt(num_stored)
    # a fixed-size export traces the grid as tensors; this eager path bakes it in as numbers
    grid_h, grid_w = int(grid_h), int(grid_w)
    if grid_h == M and grid_w == M:
        # official dinov2 skips resampling at the native grid; with an offset it would not be the identity
        return pos_embed
    dtype = pos_embed.dtype
    # bicubic resampling in half precision drifts, so compute in float32 like the official code
    patch_pos = pos_embed[:, 1:].float().reshape(1, M, M, -1).permute(0, 3, 1, 2)
    if offset:
        # legacy dinov2 semantics: a scale factor of (n + offset) / M sets both the output size (floored
        # to n) and the sampling grid, so values differ slightly from resampling straight to size n
        scale = ((grid_h + offset) / M, (grid_w + offset) / M)
        patch_pos = F.interpolate(patch_pos, scale_factor=scale, mode="bicubic", antialias=antialias)
    else:
        patch_pos = F.interpolate(patch_pos, size=(grid_h, grid_w), mode="bicubic", antialias=antialias)
    patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, -1)
    return torch.cat((pos_embed[:, :1].float(), patch_pos), dim=1).to(dtype)


def traceable_pos_embed(
    pos_embed: Tensor, grid_h: int | Tensor, grid_w: int | Tensor, *, offset: float, antialias: bool
) -> Tensor:
    """`interpolate_pos_embed` as matrix products whose sizes stay graph values under ONNX tracing.

    F.interpolate's output size (or scale) is a Python number at trace time, so a graph traced at one
    size is silently wrong at any other. Here bicubic resampling along each axis is a (n, M) weight
    matrix built from arange(n) with PyTorch's kernel and border clamping, so the same graph serves
    every grid; at the native grid the weights reduce to the identity, as the eager path's skip does.
    """
    if antialias:
        raise ConfigError(
            "dynamic-size export needs interpolate_antialias=False (antialiasing is size-specific)"
        )
    num_stored = pos_embed.shape[1] - 1
    M = math.isqrt(num_stored)
    patch_pos = pos_embed[:, 1:].float().reshape(M, M, -1)
    native = (torch.as_tensor(grid_h) == M) & (torch.as_tensor(grid_w) == M)
    rows = _bicubic_matrix(grid_h, M, offset, native)
    cols = _bicubic_matrix(grid_w, M, offset, native)
    # (h, M) x (M, M, D) x (M, w) per channel: contract rows, then columns
    patch_pos = torch.einsum("hm,mnd,wn->hwd", rows, patch_pos, cols).reshape(1, -1, patch_pos.shape[-1])
    return torch.cat((pos_embed[:, :1].float(), patch_pos), dim=1).to(pos_embed.dtype)


def _bicubic_matrix(n: int | Tensor, m: int, offset: float, native: Tensor) -> Tensor:
    """(n, m) weights of 1-D bicubic resampling from m to n samples (align_corners=False)."""
    n_t = torch.as_tensor(n, dtype=torch.float32)
    # PyTorch maps output x to source (x + 0.5) / scale - 0.5 with scale = out/in, or the legacy
    # (n + offset) / m; at the native grid the eager path does not resample at all, so scale is 1 there.
    scale = n_t / m if not offset else torch.where(native, torch.ones(()), (n_t + offset) / m)
    src = (torch.arange(n, dtype=torch.float32) + 0.5) / scale - 0.5  # type: ignore[arg-type]  # traced size
    base = torch.floor(src)
    t = src - base
    weights = _cubic_weights(t)
    columns = torch.arange(m, dtype=torch.float32)
    matrix = torch.zeros_like(src)[:, None] * columns[None, :]
    for k, w in zip(range(-1, 3), weights, strict=True):
        index = torch.clamp(base + k, 0, m - 1)
        matrix = matrix + (index[:, None] == columns[None, :]).float() * w[:, None]
    return matrix


def _cubic_weights(t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Keys' cubic convolution weights for the taps at -1, 0, 1, 2 given the fraction t in [0, 1)."""
    A = CUBIC_A

    def near(x: Tensor) -> Tensor:  # |x| <= 1
        return ((A + 2) * x - (A + 3)) * x * x + 1

    def far(x: Tensor) -> Tensor:  # 1 < |x| < 2
        return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A

    return far(t + 1), near(t), near(1 - t), far(2 - t)

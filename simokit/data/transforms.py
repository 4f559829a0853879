"""Torch conversions and augmentation for image batches and their dense targets."""

from __future__ import annotations

from collections.abc import Mapping
from typing import overload

import numpy as np
import torch

from simokit.data.targets import TARGETS
from simokit.errors import ShapeError

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


def to_tensor_batch(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Convert uint8 RGB images (B, H, W, 3) to ImageNet-normalised float32 (B, 3, H, W)."""
    # Cached splits are read-only memory maps; torch wants memory it may write to.
    x = images if isinstance(images, torch.Tensor) else torch.from_numpy(np.require(images, requirements="W"))
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ShapeError(f"images must be (B, H, W, 3) uint8 RGB; got shape {tuple(x.shape)}")
    if x.dtype != torch.uint8:
        raise ShapeError(f"images must be uint8 in 0..255; got {x.dtype} (multiply floats by 255 first)")
    x = x.permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def targets_to_tensors(arrays: Mapping[str, np.ndarray | torch.Tensor | None]) -> dict[str, torch.Tensor]:
    """Convert batched targets: seg (B, H, W) long; depth, edge, shading (B, 1, H, W); normal (B, 3, H, W).

    Keys other than the targets of data.targets.TARGETS (e.g. "image", "domain") and None values are skipped.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in arrays.items():
        if key not in TARGETS or value is None:
            continue
        # np.require copies read-only cache memory maps, which torch cannot wrap safely.
        t = (
            value
            if isinstance(value, torch.Tensor)
            else torch.from_numpy(np.require(value, requirements=("C", "W")))
        )
        channels = TARGETS[key].channels
        if channels is None:
            if t.ndim != 3:
                raise ShapeError(f"target '{key}' must be (B, H, W); got shape {tuple(t.shape)}")
            out[key] = t.long()
            continue
        if channels == 1 and t.ndim == 3:
            t = t.unsqueeze(1)
        elif t.ndim == 4 and t.shape[-1] == channels and t.shape[1] != channels:
            t = t.permute(0, 3, 1, 2)
        if t.ndim != 4 or t.shape[1] != channels:
            raise ShapeError(
                f"target '{key}' must be (B, H, W{', 3' if channels == 3 else ''}) or channels-first; "
                f"got shape {tuple(t.shape)}"
            )
        out[key] = t.float().contiguous()
    return out


@overload
def hflip(
    batch: Mapping[str, torch.Tensor], targets: None = None, which: torch.Tensor | None = None
) -> dict[str, torch.Tensor]: ...


@overload
def hflip(
    batch: torch.Tensor, targets: Mapping[str, torch.Tensor], which: torch.Tensor | None = None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]: ...


def hflip(
    batch: Mapping[str, torch.Tensor] | torch.Tensor,
    targets: Mapping[str, torch.Tensor] | None = None,
    which: torch.Tensor | None = None,
) -> dict[str, torch.Tensor] | tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Mirror left-right: hflip({"image": x, task: y}) -> dict; hflip(images, targets) -> (images, targets).

    Every tensor with >= 3 dims is flipped along its last (width) axis; a vector target such as "normal"
    (B, 3, H, W) also has its components signed by its layout's `mirror` (the camera's x axis reverses).
    Lower-rank tensors pass through.
    `which` (B,) bool limits the flip to some samples.
    """
    if isinstance(batch, torch.Tensor):
        flipped = _flip_all({"image": batch, **(targets or {})}, which)
        return flipped.pop("image"), flipped
    return _flip_all(batch, which)


def _flip_all(batch: Mapping[str, torch.Tensor], which: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """Flip every spatial tensor of `batch` (see hflip)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in batch.items():
        if value.ndim < 3:
            out[key] = value
            continue
        flipped = value.flip(-1)
        mirror = TARGETS[key].mirror if key in TARGETS else None
        if mirror is not None:
            c = len(mirror)
            if value.ndim != 4 or value.shape[1] != c:
                raise ShapeError(f"'{key}' must be (B, {c}, H, W) to flip; got shape {tuple(value.shape)}")
            sign = torch.tensor(mirror, dtype=value.dtype, device=value.device).view(1, c, 1, 1)
            flipped = flipped * sign
        if which is not None:
            mask = which.to(device=value.device, dtype=torch.bool).view(-1, *([1] * (value.ndim - 1)))
            flipped = torch.where(mask, flipped, value)
        out[key] = flipped
    return out

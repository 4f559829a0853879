"""Non-overlapping patch embedding: a strided convolution that turns an image into tokens."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from simokit.errors import ShapeError


def nearest_valid_sizes(size: int, patch_size: int) -> tuple[int, int]:
    """Return the closest multiples of `patch_size` at or below and above `size` (never below one patch)."""
    lower = max(patch_size, (size // patch_size) * patch_size)
    upper = max(patch_size, -(-size // patch_size) * patch_size)
    return lower, upper


def check_image_shape(x: Tensor, in_chans: int, patch_size: int) -> None:
    """Raise ShapeError unless `x` is (B, in_chans, H, W) with H and W multiples of `patch_size`."""
    if x.dim() != 4:
        raise ShapeError(
            f"image batch must be (B, C, H, W), got shape {tuple(x.shape)}; add a batch dimension"
        )
    if x.shape[1] != in_chans:
        raise ShapeError(
            f"image batch has {x.shape[1]} channels but the encoder expects {in_chans}; "
            "convert the images to RGB"
        )
    for axis, size in (("height", int(x.shape[2])), ("width", int(x.shape[3]))):
        if size % patch_size != 0 or size == 0:
            lower, upper = nearest_valid_sizes(size, patch_size)
            raise ShapeError(
                f"image {axis} {size} is not a multiple of the patch size {patch_size}; "
                f"resize or crop it to {lower} or {upper}"
            )


class PatchEmbed(nn.Module):
    """Split an image into patch_size x patch_size patches and project each: (B, C, H, W) -> (B, N, D)."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        """Embed patches row by row: (B, C, H, W) -> (B, H/p * W/p, D)."""
        check_image_shape(x, self.in_chans, self.patch_size)
        return torch.flatten(self.proj(x), 2).transpose(1, 2)

"""Folding a linear map of the encoder features into the first linear layers of a head that reads them."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from simokit.errors import ConfigError, ShapeError


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

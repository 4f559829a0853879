"""Encoder features on a fixed set of unlabelled images, computed once and reused.

TAP scoring and least-squares re-alignment both compare the merged encoder's features with each
expert's on the same images; expert features never change during a grid search, so they are
extracted once here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import cast

import numpy as np
import torch
from torch import Tensor

from simokit.data import SceneArrays, to_tensor_batch
from simokit.device import on_device, resolve_device
from simokit.models import DinoVisionTransformer
from simokit.models.heads import DenseHead, FeatureConsumer

# A site is where features are read: (non-negative block index, after the final LayerNorm?).
Site = tuple[int, bool]
Part = tuple[Site, str]  # (site, "patch" | "cls")
BatchFeatures = dict[Site, tuple[Tensor, Tensor]]  # site -> ((B, C, h, w) patch map, (B, C) CLS)
# collect()'s signature: a study takes another (a disk cache) for the fixed base and expert encoders
Collector = Callable[[DinoVisionTransformer, list[Tensor], list[Site], str], list[BatchFeatures]]


def head_parts(head: DenseHead, depth: int) -> list[Part]:
    """The (site, part) pairs a head reads, block indices made non-negative."""
    return sorted({((c.layer % depth, head.cfg.norm), c.part) for c in head.consumers()})


def part_of(consumer: FeatureConsumer, head: DenseHead, depth: int) -> Part:
    """The (site, part) a head's feature consumer reads."""
    return (consumer.layer % depth, head.cfg.norm), consumer.part


def image_batches(data: SceneArrays, n: int, batch: int) -> Iterator[Tensor]:
    """Yield normalised (B, 3, H, W) batches of the first `n` images of `data`."""
    count = min(n, len(data))
    for start in range(0, count, batch):
        yield to_tensor_batch(np.asarray(data.image[start : min(start + batch, count)]))


@torch.no_grad()
def block_features(encoder: DinoVisionTransformer, x: Tensor, sites: list[Site]) -> BatchFeatures:
    """Features at `sites` for one batch: site -> ((B, C, h, w), (B, C))."""
    return encoder.block_sites(x, sites)


@torch.no_grad()
def collect(
    encoder: DinoVisionTransformer, batches: list[Tensor], sites: list[Site], device: str = "cpu"
) -> list[BatchFeatures]:
    """Features at `sites` for every batch in `batches`, computed on `device`, returned on CPU."""
    dev = resolve_device(device)
    net = cast(DinoVisionTransformer, on_device(encoder, dev)).eval()
    out = []
    for x in batches:
        feats = block_features(net, x.to(dev), sites)
        out.append({b: (p.cpu(), c.cpu()) for b, (p, c) in feats.items()})
    return out


def rows(feats: BatchFeatures, part: Part) -> Tensor:
    """One part of one site as (N, C) rows: patch tokens flattened over B·h·w, or CLS tokens."""
    patch, cls = feats[part[0]]
    if part[1] == "cls":
        return cls
    return patch.permute(0, 2, 3, 1).reshape(-1, patch.shape[1])

"""DenseHead: the base of every task head, mapping per-block ViT features to a dense prediction."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from simokit.errors import ShapeError
from simokit.models.heads.config import HeadConfig
from simokit.models.heads.fold import FeatureConsumer

Features = list[tuple[Tensor, Tensor]]


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

    def native_size(self, height: int, width: int) -> tuple[int, int]:
        """Output size the head's source model returns for an input of (height, width) pixels.

        simokit's own heads predict at the input size; imported heads override this with their
        source's rule, which the single-expert export of `simokit import` reproduces.
        """
        return height, width

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

"""One shared encoder feeding several task heads from a single encoder pass."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import cast

from torch import Tensor, nn

from simokit.errors import ConfigError
from simokit.models.heads import DenseHead, FeatureConsumer
from simokit.models.vit import DinoVisionTransformer


class MultiTaskModel(nn.Module):
    """Encoder plus named dense heads: (B, 3, H, W) -> {task: (B, K_task, H, W)}."""

    def __init__(self, encoder: DinoVisionTransformer, heads: Mapping[str, nn.Module]) -> None:
        super().__init__()
        if not heads:
            raise ConfigError("MultiTaskModel needs at least one head")
        self.encoder = encoder
        self.heads = nn.ModuleDict(dict(heads))
        for name, head in heads.items():
            if not isinstance(head, DenseHead):
                raise ConfigError(
                    f"head '{name}' is a {type(head).__name__}, not a DenseHead; build it with build_head"
                )
            if head.embed_dim != encoder.embed_dim:
                raise ConfigError(
                    f"head '{name}' was built for {head.embed_dim}-wide features but the encoder is "
                    f"{encoder.embed_dim} wide; rebuild the head with embed_dim={encoder.embed_dim}"
                )
            encoder.resolve_block_indices(head.layers)

    def _head_items(self) -> list[tuple[str, DenseHead]]:
        return [(name, cast(DenseHead, head)) for name, head in self.heads.items()]

    def head_layers(self, name: str) -> list[int]:
        """Non-negative encoder block indices that head `name` reads, in its order."""
        return self.encoder.resolve_block_indices(cast(DenseHead, self.heads[name]).layers)

    def required_layers(self) -> list[int]:
        """Sorted union of the non-negative block indices all heads read."""
        needed: set[int] = set()
        for name in self.heads:
            needed.update(self.head_layers(name))
        return sorted(needed)

    def required_sites(self) -> list[tuple[int, bool]]:
        """Sorted (block, after final norm?) pairs all heads read."""
        return sorted({(b, h.cfg.norm) for name, h in self._head_items() for b in self.head_layers(name)})

    def features(self, x: Tensor) -> dict[tuple[int, bool], tuple[Tensor, Tensor]]:
        """One encoder pass: (B, 3, H, W) -> {(block, normed): (patch (B, C, H/p, W/p), cls (B, C))}."""
        return self.encoder.block_sites(x, self.required_sites())

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Predict every task: (B, 3, H, W) -> {task: (B, K_task, H, W)}."""
        feats = self.features(x)
        out_size = (x.shape[-2], x.shape[-1])  # no int(): keeps ONNX exports with dynamic size dynamic
        outputs: dict[str, Tensor] = {}
        for name, head in self._head_items():
            outputs[name] = head([feats[(i, head.cfg.norm)] for i in self.head_layers(name)], out_size)
        return outputs

    def consumers(self) -> dict[str, list[FeatureConsumer]]:
        """Per task, the head's feature consumers with non-negative block indices."""
        depth = self.encoder.depth
        return {
            name: [dataclasses.replace(c, layer=c.layer % depth) for c in head.consumers()]
            for name, head in self._head_items()
        }

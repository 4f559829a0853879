"""A disk cache of the fixed encoders' features, so a re-run with another method or alpha skips them.

On the user's frames a build is dominated by encoder passes. The base and the experts never change
between studies, so their features on a frame set are stored under the cache root, keyed by the
encoder's weights, the exact input batches (hence the frame set and the model size) and the blocks.
"""

from __future__ import annotations

import hashlib

import torch
from torch import Tensor

from simokit.cache import atomic_path, cache_root, config_key
from simokit.merge.features import BatchFeatures, Site, collect
from simokit.models import DinoVisionTransformer

_FORMAT = 2  # 2: keyed by site (block, after the final norm?)


def tensor_digest(tensors: list[Tensor]) -> str:
    """SHA-256 over the shapes and bytes of `tensors`, in order."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class FeatureStore:
    """A `Collector` (merge.features.collect's signature) that reads and writes features on disk.

    `hits` and `misses` count lookups, so tests and reports can tell what was computed.
    """

    def __init__(self, name: str = "features") -> None:
        self.root = cache_root() / name
        self.hits = self.misses = 0
        self._weights: dict[int, tuple[DinoVisionTransformer, str]] = {}

    def _weights_key(self, encoder: DinoVisionTransformer) -> str:
        # the study hands the same encoder objects to TAP and re-alignment: hash their weights once
        known = self._weights.get(id(encoder))
        if known is None or known[0] is not encoder:
            state = encoder.state_dict()
            known = (encoder, tensor_digest([state[k] for k in sorted(state)]))
            self._weights[id(encoder)] = known
        return known[1]

    def __call__(
        self, encoder: DinoVisionTransformer, batches: list[Tensor], sites: list[Site], device: str = "cpu"
    ) -> list[BatchFeatures]:
        """Features at `sites` for every batch, from the cache or computed with `collect` and stored."""
        key = config_key(
            {
                "weights": self._weights_key(encoder),
                "images": tensor_digest(batches),
                "sites": [list(s) for s in sites],
                "format": _FORMAT,
            }
        )
        path = self.root / f"{key}.pt"
        if path.is_file():
            self.hits += 1
            loaded = torch.load(path, weights_only=True)
            return [{(int(b), bool(n)): (p, c) for (b, n), (p, c) in batch.items()} for batch in loaded]
        self.misses += 1
        feats = collect(encoder, batches, sites, device)
        with atomic_path(path) as tmp:
            torch.save(feats, tmp)
        return feats

"""Exact top-k magnitude threshold over a whole task vector, seen one tensor at a time.

TIES trims each task vector to its k% largest magnitudes over the WHOLE vector. Holding every
magnitude of a ViT-L task vector to call `kthvalue` costs GBs, so this is a two-pass radix select:
non-negative float32 numbers sort like their int32 bit patterns, so a histogram of the upper 16 bits
finds the bin holding the k-th value and a second histogram of the lower 16 bits, restricted to that
bin, pins it exactly. Memory: two fixed histograms (0.75 MiB) per expert.

Use: `observe(0, t)` for every tensor, `end_pass(0)`, `observe(1, t)` for every tensor again,
`end_pass(1)`; `threshold` then equals `kthvalue(|τ|, numel − n_keep + 1)` of the concatenation
(+inf when n_keep = 0), so `|τ| ≥ threshold` keeps the top n_keep entries.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from simokit.merge.task_vectors import keep_count, magnitude

# |x| clears the sign bit, so bit patterns are < 2^31 and the upper half-word is < 2^15.
_HIGH_BINS = 1 << 15
_LOW_BINS = 1 << 16


def _bits(t: Tensor) -> Tensor:
    return magnitude(t).reshape(-1).view(torch.int32).to(torch.int64)


def _count_into(hist: Tensor, index: Tensor) -> None:
    # index_add_ of a broadcast 1: torch.bincount with a large minlength costs ~8 ms even for empty input.
    hist.index_add_(0, index, torch.ones(1, dtype=torch.int64).expand(index.numel()))


def _from_top(hist: Tensor, rank: int) -> tuple[int, int]:
    """Return (bin, rank within that bin) of the rank-th largest element counted by `hist`."""
    from_top = hist.flip(0).cumsum(0)
    j = int(torch.searchsorted(from_top, torch.tensor([rank], dtype=from_top.dtype)))
    above = int(from_top[j - 1]) if j > 0 else 0
    return hist.numel() - 1 - j, rank - above


class MagnitudeThreshold:
    """Exact n_keep-th largest |τ| of one task vector (tensors of any shape), n_keep = ⌊fraction·numel⌋."""

    passes = 2

    def __init__(self, fraction: float) -> None:
        self.fraction = fraction
        self.numel = 0
        self.threshold: float | None = None
        self._high = torch.zeros(_HIGH_BINS, dtype=torch.int64)
        self._low = torch.zeros(_LOW_BINS, dtype=torch.int64)
        self._bin = -1
        self._rank = 0

    def observe(self, pass_index: int, t: Tensor) -> None:
        """Add one tensor of the task vector to the histogram of pass 0 or 1."""
        if self.threshold is not None:
            return
        bits = _bits(t)
        if pass_index == 0:
            self.numel += bits.numel()
            _count_into(self._high, bits >> 16)
        else:
            _count_into(self._low, bits[(bits >> 16) == self._bin] & (_LOW_BINS - 1))

    def end_pass(self, pass_index: int) -> None:
        """Pick the upper-half bin after pass 0, the exact value after pass 1."""
        if self.threshold is not None:
            return
        if pass_index == 0:
            n_keep = keep_count(self.numel, self.fraction)
            if n_keep == 0:
                self.threshold = math.inf
                return
            self._bin, self._rank = _from_top(self._high, n_keep)
            return
        low, _ = _from_top(self._low, self._rank)
        pattern = torch.tensor([(self._bin << 16) | low], dtype=torch.int32)
        self.threshold = float(pattern.view(torch.float32))

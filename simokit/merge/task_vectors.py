"""Task vectors and the helpers the merge methods share, each written once.

A task vector is τ_t = θ_t − θ_0 for every floating-point tensor of an encoder; integer buffers
are not merged (the base's copy is kept). Helpers take and return plain tensors so the same code
serves the in-memory and the streaming merge.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable

import torch
from torch import Tensor

from simokit.errors import CheckpointError

_EMBEDDING_KEYS = ("cls_token", "pos_embed", "mask_token", "register_tokens")
# Official DINOv2 keys are `blocks.<i>.`; checkpoints saved with block chunking use `blocks.<c>.<i>.`.
_BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.(?:(\d+)\.)?")


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Return the dtype merge arithmetic runs in: float64 stays, every other float becomes float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def task_vectors(base: Tensor, experts: list[Tensor]) -> list[Tensor]:
    """Return τ_t = θ_t − θ_0 for one tensor of T experts (each the base's shape, in compute dtype)."""
    dtype = compute_dtype(base.dtype)
    ref = base.to(dtype)
    return [expert.to(dtype) - ref for expert in experts]


def block_index(key: str, depth: int) -> int:
    """Return a key's layer: 0 for embeddings and tokens, i+1 for `blocks.i.*`, depth+1 for `norm.*`."""
    match = _BLOCK_KEY.match(key)
    if match:
        return int(match.group(2) or match.group(1)) + 1
    if key in _EMBEDDING_KEYS or key.startswith("patch_embed."):
        return 0
    if key.startswith("norm."):
        return depth + 1
    raise CheckpointError(f"encoder key '{key}' is not a DINOv2 embedding, block or final norm tensor")


def infer_depth(keys: Iterable[str]) -> int:
    """Return the number of transformer blocks named by `blocks.i.*` keys (0 if there are none)."""
    indices = [block_index(k, 0) for k in keys if _BLOCK_KEY.match(k)]
    return max(indices, default=0)


def keep_count(numel: int, fraction: float) -> int:
    """Return ⌊numel·fraction⌋, robust to float error such as 0.29·100 = 28.999…"""
    return math.floor(numel * fraction + 1e-6)


def magnitude(t: Tensor) -> Tensor:
    """Return |t| in float32, the precision every magnitude threshold is computed and compared in."""
    return t.detach().abs().to(torch.float32)


def kth_largest_magnitude(t: Tensor, n_keep: int) -> float:
    """Return the n_keep-th largest |t| (+inf when n_keep is 0), so `|t| ≥ it` keeps the top n_keep."""
    if n_keep <= 0:
        return math.inf
    flat = magnitude(t).reshape(-1)
    return float(torch.kthvalue(flat, flat.numel() - n_keep + 1).values)


def trim_magnitude(t: Tensor, threshold: float) -> Tensor:
    """Zero every entry of t whose magnitude is below `threshold` (same shape as t)."""
    return t * (magnitude(t) >= threshold)


def elect_sign(trimmed: Tensor) -> Tensor:
    """Return sign(Σ_t τ̂_t) for stacked trimmed task vectors of shape (T, ...); 0 where the sum is 0."""
    return torch.sign(trimmed.sum(dim=0))


def disjoint_mean(trimmed: Tensor, sign: Tensor) -> Tensor:
    """Mean over the experts whose (T, ...) entry is non-zero and agrees with `sign` (0 if none do)."""
    agree = trimmed * sign > 0
    count = agree.sum(dim=0).clamp(min=1)
    return (trimmed * agree).sum(dim=0) / count


def stable_seed(seed: int, key: str, index: int) -> int:
    """Derive a generator seed from (seed, tensor key, expert index) that is the same in every process."""
    digest = hashlib.sha256(f"{seed}|{key}|{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def drop_and_rescale(t: Tensor, p: float, generator: torch.Generator) -> Tensor:
    """DARE: zero each entry with probability p and scale survivors by 1/(1−p) (same shape as t)."""
    if p == 0.0:
        return t.clone()
    keep = torch.rand(t.shape, generator=generator) >= p
    return t * keep / (1.0 - p)


def magnitude_band(t: Tensor, drop_top: float, drop_bottom: float) -> Tensor:
    """Boolean mask keeping |t| ranks between the bottom `drop_bottom` and top `drop_top` fractions."""
    n = t.numel()
    n_top, n_bottom = keep_count(n, drop_top), keep_count(n, drop_bottom)
    # A stable sort breaks ties by position, so exactly n_top + n_bottom entries go whatever the values.
    order = torch.argsort(magnitude(t).reshape(-1), stable=True)
    keep = torch.zeros(n, dtype=torch.bool)
    keep[order[n_bottom : n - n_top]] = True
    return keep.reshape(t.shape)


def is_matrix(t: Tensor) -> bool:
    """True for 2-D tensors (linear-layer weights), the ones spectral methods decompose."""
    return t.dim() == 2


def truncated_svd(m: Tensor, rank: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Return the top-`rank` (default all) singular triplets of m (r×c): U (r×k), S (k), Vh (k×c)."""
    u, s, vh = torch.linalg.svd(m, full_matrices=False)
    if rank is None:
        return u, s, vh
    return u[:, :rank], s[:rank], vh[:rank, :]


def orthogonalize(m: Tensor) -> Tensor:
    """Return the closest matrix with orthonormal columns (rows if wide): P Qᵀ from m = P Σ Qᵀ."""
    p, _, qh = torch.linalg.svd(m, full_matrices=False)
    return p @ qh

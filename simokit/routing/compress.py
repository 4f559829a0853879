"""Compressed task vectors: a merged encoder kept as the base plus a low-rank or sparse delta.

A routed bundle holds one encoder per domain. Storing each as the shared base plus a compact
delta τ̂ = compress(θ_merged − θ_0) makes the bundle roughly one encoder plus a few percent per
domain. The compression is lossy, so it runs before re-alignment: the heads are fitted to the
features the compressed encoder really produces, and the bundle stores exactly that encoder.

- 'lowrank': every weight matrix's delta (linear layers, the patch embedding's kernel as
  (C, 3·p·p), the position embedding as (N, C)) is cut to its top `rank` singular directions;
  vectors (biases, norms, layer scales, tokens) stay exact. Storage: rank·(rows + cols) per matrix.
- 'sparse': the `density` fraction of largest |τ| entries over the whole encoder (one global
  threshold, as TIES trims), the rest reset to the base; a bit mask plus the kept values.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from simokit.errors import ConfigError
from simokit.merge.task_vectors import keep_count, kth_largest_magnitude, truncated_svd
from simokit.runtime.delta_decode import matrix_shape

KINDS = ("none", "lowrank", "sparse")


@dataclass
class DeltaStats:
    """What a compression kept: stored numbers vs. the encoder's, and the delta energy kept."""

    kind: str
    params: int = 0  # encoder parameters (floating point)
    stored: int = 0  # numbers the compressed delta needs (factors, kept values; vectors in full)
    energy: float = 1.0  # ‖τ̂‖² / ‖τ‖²
    per_tensor: dict[str, int] = field(default_factory=dict)  # key -> rank kept (lowrank)

    @property
    def ratio(self) -> float:
        """Stored numbers as a fraction of the full encoder's."""
        return self.stored / max(self.params, 1)


def as_matrix(t: Tensor) -> Tensor | None:
    """The 2-D view a low-rank delta factorises (the same one the bundle's delta encoding uses), or
    None for vectors and scalars; a single-row view such as a token's is kept exactly by the caller."""
    return t.reshape(matrix_shape(tuple(t.shape))) if t.dim() >= 2 else None


def compress_delta(
    base: dict[str, Tensor], merged: dict[str, Tensor], kind: str, rank: int = 16, density: float = 0.1
) -> tuple[dict[str, Tensor], DeltaStats]:
    """Return base + compress(merged − base) for every floating tensor, and what was kept."""
    if kind not in KINDS:
        raise ConfigError(f"delta compression '{kind}' unknown; choose from {', '.join(KINDS)}")
    if kind == "lowrank" and rank < 1:
        raise ConfigError(f"lowrank deltas need rank >= 1, got {rank}")
    if kind == "sparse" and not 0.0 < density <= 1.0:
        raise ConfigError(f"sparse deltas need 0 < density <= 1, got {density}")
    missing = sorted(set(base) ^ set(merged))
    if missing:
        raise ConfigError(f"merged encoder and base differ in tensors: {', '.join(missing[:5])}")
    floats = [k for k, v in base.items() if v.is_floating_point()]
    deltas = {k: merged[k].float() - base[k].float() for k in floats}
    stats = DeltaStats(kind, params=sum(base[k].numel() for k in floats))
    total = sum(float(d.pow(2).sum()) for d in deltas.values())
    if kind == "none":
        stats.stored = stats.params
        return dict(merged), stats
    kept: dict[str, Tensor] = {}
    if kind == "lowrank":
        for key, delta in deltas.items():
            m = as_matrix(delta)
            if m is None or min(m.shape) <= rank:
                kept[key], n = delta, delta.numel()
            else:
                u, s, vh = truncated_svd(m.double(), rank)
                kept[key] = ((u * s) @ vh).float().reshape(delta.shape)
                n = rank * (m.shape[0] + m.shape[1])
                stats.per_tensor[key] = rank
            stats.stored += n
    else:
        flat = torch.cat([d.reshape(-1) for d in deltas.values()])
        threshold = kth_largest_magnitude(flat, keep_count(flat.numel(), density))
        for key, delta in deltas.items():
            mask = delta.abs() >= threshold
            kept[key] = delta * mask
            stats.stored += int(mask.sum())
    stats.energy = sum(float(v.pow(2).sum()) for v in kept.values()) / max(total, 1e-30)
    out = dict(merged)
    for key, delta in kept.items():
        out[key] = (base[key].float() + delta).to(base[key].dtype)
    return out, stats

"""SiM routing, robot side: pick a domain per input by its projection residual onto SVD subspaces (numpy).

Each domain is represented by the top singular directions of features of a few support images
(the span they occupy in feature space). A new input's features are projected onto each domain's
subspace; the domain whose subspace leaves the smallest relative residual ‖x − UUᵀx‖² / ‖x‖² wins.
No labels, task ids or trained router: the bases are computed once, offline, from ~32 images.
For video, `Hysteresis` keeps the current domain unless another one is better by a margin, so a
robot at a doorway does not flicker between engines frame by frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simokit.errors import ConfigError, ShapeError

ROUTER_MODES = ("grid", "pooled", "patch")  # grid/pooled: one vector per image; patch: per token


def fit_basis(features: np.ndarray, energy: float = 0.9, max_rank: int = 16) -> np.ndarray:
    """(n, C) support features -> (C, r) orthonormal basis keeping `energy` of the spectrum, r <= max_rank."""
    if features.ndim != 2 or features.shape[0] < 1:
        raise ShapeError(f"support features must be (n, C) with n >= 1; got shape {features.shape}")
    if not 0 < energy <= 1 or max_rank < 1:
        raise ConfigError(f"router energy must be in (0, 1] and max_rank >= 1; got {energy}, {max_rank}")
    _, s, vt = np.linalg.svd(features.astype(np.float64), full_matrices=False)
    cumulative = np.cumsum(s**2) / max(float((s**2).sum()), 1e-30)
    rank = min(int(np.searchsorted(cumulative, energy - 1e-12) + 1), max_rank, len(s))
    return vt[:rank].T.astype(np.float32)


def relative_residual(x: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """‖x − UUᵀx‖² / ‖x‖² for rows of x: (..., C) with U (C, r) -> (...)."""
    x64 = x.astype(np.float64)
    proj = (x64 @ basis) @ basis.T
    num = ((x64 - proj) ** 2).sum(axis=-1)
    return num / np.maximum((x64**2).sum(axis=-1), 1e-30)


@dataclass
class SubspaceRouter:
    """Per-domain bases over features of one encoder block; routes each input to a domain index."""

    domains: tuple[str, ...]
    bases: list[np.ndarray]
    block: int
    mode: str = "grid"

    def __post_init__(self) -> None:
        if self.mode not in ROUTER_MODES:
            raise ConfigError(f"router mode '{self.mode}' is not one of {', '.join(ROUTER_MODES)}")
        if len(self.domains) != len(self.bases) or len(self.domains) < 2:
            raise ConfigError("a router needs one basis per domain and at least two domains")

    def residuals(self, feats: np.ndarray) -> np.ndarray:
        """(B, F) grid/pooled or (B, N, C) patch features -> (B, D) relative residual per domain."""
        want = 3 if self.mode == "patch" else 2
        if feats.ndim != want:
            raise ShapeError(f"{self.mode} router features must have {want} dims; got shape {feats.shape}")
        per = [relative_residual(feats, b) for b in self.bases]
        if self.mode == "patch":
            per = [r.mean(axis=1) for r in per]
        return np.stack(per, axis=1)

    def route(self, feats: np.ndarray) -> np.ndarray:
        """(B, ...) features -> (B,) index of the domain with the smallest residual."""
        return self.residuals(feats).argmin(axis=1)

    def save(self, path: str | Path) -> None:
        """Write the bases and settings to an .npz file (atomically)."""
        target = Path(path)
        tmp = target.with_name(f".{target.name}.tmp.npz")
        arrays: dict[str, np.ndarray] = {f"basis_{i}": b for i, b in enumerate(self.bases)}
        arrays["domains"], arrays["mode"] = np.array(self.domains), np.array(self.mode)
        arrays["block"] = np.array(self.block)
        np.savez(tmp, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as bool (allow_pickle)
        tmp.replace(target)

    @classmethod
    def load(cls, path: str | Path) -> SubspaceRouter:
        """Read a router written by `save`."""
        with np.load(path, allow_pickle=False) as data:
            domains = tuple(str(d) for d in data["domains"])
            bases = [data[f"basis_{i}"] for i in range(len(domains))]
            return cls(domains, bases, int(data["block"]), str(data["mode"]))

    def size_bytes(self) -> int:
        """Bytes of all bases (float32)."""
        return sum(b.nbytes for b in self.bases)


class Hysteresis:
    """Keeps the current domain unless another's residual is lower by a relative `margin`."""

    def __init__(self, margin: float = 0.1) -> None:
        if not 0 <= margin < 1:
            raise ConfigError(f"router margin must be in [0, 1); got {margin}")
        self.margin = margin
        self.current: int | None = None
        self.switches = 0

    def __call__(self, residuals: np.ndarray) -> int:
        """(D,) residuals of one frame -> the domain index to use for it."""
        best = int(residuals.argmin())
        if self.current is None:
            self.current = best
        elif best != self.current and residuals[best] < (1 - self.margin) * residuals[self.current]:
            self.current = best
            self.switches += 1
        return self.current

"""How each dense target is stored and batched: the data layer's half of the task table.

The renderer, the scene cache and the training batches all read this one table. Task semantics
(heads, losses, metrics, pictures) live a layer up in simokit.tasks.spec, keyed by the same names.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simokit.errors import DataError


@dataclass(frozen=True)
class TargetLayout:
    """One target's per-pixel layout.

    `shape` is the trailing per-pixel shape as stored, () for one value or (3,) for a 3-vector;
    `classes` marks class ids, batched as long (B, H, W) without a channel axis; `mirror` is the
    per-component sign a left-right flip applies (a camera-frame vector's x component turns over).
    """

    shape: tuple[int, ...]
    dtype: type[np.generic]
    classes: bool = False
    mirror: tuple[float, ...] | None = None

    @property
    def channels(self) -> int | None:
        """Channels after batching: None for class ids, else the vector length (1 for scalars)."""
        return None if self.classes else (self.shape[0] if self.shape else 1)


IMAGE = TargetLayout((3,), np.uint8)
TARGETS: dict[str, TargetLayout] = {
    "seg": TargetLayout((), np.uint8, classes=True),
    "depth": TargetLayout((), np.float32),
    "normal": TargetLayout((3,), np.float32, mirror=(-1.0, 1.0, 1.0)),
    "edge": TargetLayout((), np.float32),
    "shading": TargetLayout((), np.float32),
    "relative_depth": TargetLayout((), np.float32),
}


def channels_first(key: str, batch: np.ndarray) -> np.ndarray:
    """A stored (B, H, W, C) vector target as (B, C, H, W), the layout outputs come in; others as they are."""
    layout = TARGETS.get(key)
    if layout is None:
        raise DataError(f"unknown target '{key}'; choose from {', '.join(TARGETS)}")
    return batch.transpose(0, 3, 1, 2) if layout.shape else batch

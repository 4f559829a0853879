"""SceneArrays: a stack of images with their dense targets, shared by generated and on-disk datasets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

from simokit.data.labels import TASK_KEYS
from simokit.errors import DataError


@dataclass(frozen=True)
class SceneArrays:
    """Stacked samples: image (N, H, W, 3) uint8, seg (N, H, W) uint8 (255 = ignore), depth (N, H, W)
    float32 metres, normal (N, H, W, 3) float32, edge and shading (N, H, W) float32 in [0, 1],
    relative_depth (N, H, W) float32 inverse depth in 1/m (0 = no label), and domain (N,) uint8 index
    into DOMAINS. Tasks that were not generated or are missing on disk are None.
    """

    image: np.ndarray
    domain: np.ndarray
    seg: np.ndarray | None = None
    depth: np.ndarray | None = None
    normal: np.ndarray | None = None
    edge: np.ndarray | None = None
    shading: np.ndarray | None = None
    relative_depth: np.ndarray | None = None

    def __post_init__(self) -> None:
        """Check that every present field has one entry per image."""
        n = len(self.image)
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and len(value) != n:
                raise DataError(f"SceneArrays field '{f.name}' has {len(value)} entries but image has {n}")

    def __len__(self) -> int:
        """Return the number of samples N."""
        return len(self.image)

    @property
    def tasks(self) -> tuple[str, ...]:
        """Return the task keys whose arrays are present, in TASK_KEYS order."""
        return tuple(k for k in TASK_KEYS if getattr(self, k) is not None)

    def subset(self, indices: Sequence[int] | np.ndarray) -> SceneArrays:
        """Return a new SceneArrays holding only `indices` (copies, so memmaps are not kept open)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(idx) and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise DataError(f"subset indices must lie in [0, {len(self)}); got {idx.min()}..{idx.max()}")
        tasks = {
            k: None if getattr(self, k) is None else np.asarray(getattr(self, k)[idx]) for k in TASK_KEYS
        }
        return SceneArrays(image=np.asarray(self.image[idx]), domain=np.asarray(self.domain[idx]), **tasks)

    def targets(self, i: int) -> dict[str, np.ndarray]:
        """Return sample i's present targets, e.g. {"seg": (H, W), "depth": (H, W), "normal": (H, W, 3)}."""
        return {k: np.asarray(getattr(self, k)[i]) for k in self.tasks}

    def batch(self, indices: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
        """Return {"image": (B, H, W, 3), <task>: (B, ...)} for `indices`, ready for targets_to_tensors."""
        sub = self.subset(indices)
        out = {"image": sub.image}
        out.update({k: getattr(sub, k) for k in sub.tasks})
        return out

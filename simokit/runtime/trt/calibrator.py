"""Legacy (implicit) INT8 from an existing calibration cache; imported only when one is used.

TensorRT deprecated implicit INT8 calibration in 10.1 and removes it in 11; explicit Q/DQ graphs
are the supported route. This calibrator never calibrates: it hands TensorRT the cache written
by an earlier calibration (simokit's calib step or trtexec), and returns no batches, so a cache
TensorRT rejects fails the build instead of silently calibrating on nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import tensorrt as trt

if TYPE_CHECKING:
    from typing_extensions import Buffer


class CacheCalibrator(trt.IInt8EntropyCalibrator2):
    """Entropy calibrator that only replays `path`."""

    def __init__(self, path: Path) -> None:
        super().__init__()  # the pybind11 trampoline needs its own constructor called
        self.path = Path(path)

    def get_batch_size(self) -> int:
        """Calibration batch size (unused: no batches are served)."""
        return 1

    def get_batch(self, names: list[str]) -> list[int]:
        """No calibration data: an empty list tells TensorRT there are no batches."""
        return []

    def read_calibration_cache(self) -> bytes:
        """The cache file's bytes."""
        return self.path.read_bytes()

    def write_calibration_cache(self, cache: Buffer) -> None:
        """Leave the given cache file untouched."""

"""Legacy (implicit) INT8: TensorRT's entropy calibrator on a calibration cache file.

TensorRT deprecated implicit INT8 calibration in 10.1 and removes it in 11; explicit Q/DQ graphs
are the supported route, but JetPack devices on TensorRT 10.0 still build INT8 engines this way.
One calibrator serves both uses:

- replaying (the engine build): no batches. TensorRT gets the cache written by an earlier
  calibration (`simokit calib --trt-cache` or trtexec); as no batches are served, a cache TensorRT
  rejects fails the build instead of silently calibrating on nothing.
- calibrating (`simokit calib --trt-cache`): equal-sized batches, already in the graph's input
  layout, are copied to the GPU one at a time, and the cache TensorRT produces goes to `save`.

This module imports TensorRT at import time, because the calibrator must subclass
trt.IInt8EntropyCalibrator2 at module level; it is imported only inside the functions that use it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import tensorrt as trt

from simokit.runtime.trt import cuda

if TYPE_CHECKING:
    from typing_extensions import Buffer


class CacheCalibrator(trt.IInt8EntropyCalibrator2):
    """Entropy calibrator on the cache file `path`, calibrating on `batches` when there are any.

    `check` vets the cache bytes before TensorRT gets them; `save` receives the cache TensorRT
    writes (without it the file is left untouched).
    """

    def __init__(
        self,
        path: Path,
        batches: Sequence[np.ndarray] = (),
        *,
        check: Callable[[bytes], object] | None = None,
        save: Callable[[bytes], object] | None = None,
    ) -> None:
        super().__init__()  # the pybind11 trampoline needs its own constructor called
        self.path = Path(path)
        self._batches = [np.ascontiguousarray(b) for b in batches]
        self._check, self._save = check, save
        self._next = 0
        self._device = 0
        self._stream: cuda.Handle | None = None

    def get_batch_size(self) -> int:
        """Images per calibration batch (1 when only replaying: no batches are served)."""
        return len(self._batches[0]) if self._batches else 1

    def get_batch(self, names: list[str]) -> list[int]:
        """Copy the next batch to the GPU and return its address; [] when done (at once when replaying)."""
        if self._next >= len(self._batches):
            return []
        host = self._batches[self._next]
        if self._stream is None:
            self._stream = cuda.stream_create()
            self._device = cuda.malloc(host.nbytes)
        cuda.copy_to_device(self._device, host, self._stream)
        cuda.stream_sync(self._stream)  # the host batch is pageable: wait before TensorRT reads it
        self._next += 1
        return [self._device]

    # TensorRT takes None for "no cache"; its stubs say a buffer is always returned.
    def read_calibration_cache(self) -> bytes | None:  # type: ignore[override, unused-ignore]
        """The cache file's bytes (vetted by `check`), or None while there is none yet."""
        if not self.path.is_file():
            return None
        data = self.path.read_bytes()
        if self._check is not None:
            self._check(data)
        return data

    def write_calibration_cache(self, cache: Buffer) -> None:
        """Hand the cache TensorRT produced to `save`; without one, leave the file untouched."""
        if self._save is not None:
            self._save(bytes(cache))

    def free(self) -> None:
        """Release the device buffer and stream (nothing to release when only replaying)."""
        if self._stream is not None:
            cuda.free(self._device)
            cuda.stream_destroy(self._stream)
            self._stream, self._device = None, 0

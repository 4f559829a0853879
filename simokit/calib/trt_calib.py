"""The legacy INT8 route: a TensorRT entropy calibrator that writes the bundle's calib.cache.

TensorRT deprecated implicit calibration in 10.1 in favour of Q/DQ graphs (model.int8.onnx), but
JetPack devices on TensorRT 10.0 still build INT8 engines this way. The calibrator reads the same
prepared tensors as ONNX Runtime's calibration (a readers.CalibSet), and once calib.cache exists
it hands the cache to TensorRT so later builds (`simokit build --backend tensorrt --int8`) need no
images at all.

This module imports TensorRT (and cuda-python for device buffers) at import time, because the
calibrator must subclass trt.IInt8EntropyCalibrator2 at module level; import it only inside the
function that needs it: `simokit`, `simokit.calib` and `simokit.runtime` never import it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import tensorrt as trt

from simokit.calib.readers import CalibSet
from simokit.calib.trt_cache import CACHE_FILE, parse_cache, write_cache_bytes
from simokit.errors import ConfigError, DataError
from simokit.runtime.bundle import MODEL_FILE, BundleMeta


def _cudart() -> Any:
    try:
        from cuda.bindings import runtime  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart as runtime  # older cuda-python
        except ImportError:
            raise ConfigError(
                "the TensorRT calibrator needs cuda-python: pip install 'simokit[trt]'"
            ) from None
    return runtime


def _check(result: Any, what: str) -> Any:
    """cuda-python returns (error, *values); raise on an error, return the value(s)."""
    err, *values = result
    if int(err) != 0:
        raise ConfigError(f"CUDA {what} failed with error {int(err)}")
    return values[0] if len(values) == 1 else values


class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
    """IInt8EntropyCalibrator2 over a CalibSet in fixed-size batches, caching to `cache_path`.

    With `data=None` it only serves an existing cache (TensorRT then skips calibration).
    """

    def __init__(self, cache_path: Path, data: CalibSet | None = None, batch: int = 8) -> None:
        trt.IInt8EntropyCalibrator2.__init__(self)
        self.cache_path = cache_path
        self.batch = batch
        self._batches: list[np.ndarray] = []
        if data is None and not cache_path.is_file():
            raise DataError(f"{cache_path} does not exist; run `simokit calib BUNDLE --data SRC --trt-cache`")
        if data is not None:
            # TensorRT wants every batch the same size: the tail that does not fill one is left out.
            full = len(data) // batch * batch
            if full == 0:
                raise DataError(f"TensorRT calibration needs at least {batch} images, got {len(data)}")
            self._batches = [np.ascontiguousarray(b) for b in data.batches(batch)[: full // batch]]
        self._next = 0
        self._device = 0

    def get_batch_size(self) -> int:
        """Images per calibration batch."""
        return self.batch

    def get_batch(self, names: list[str]) -> list[int]:
        """Copy the next batch to the GPU and return its address; [] when done."""
        if self._next >= len(self._batches):
            return []
        host = self._batches[self._next]
        cudart = _cudart()
        if not self._device:
            self._device = int(_check(cudart.cudaMalloc(host.nbytes), "cudaMalloc"))
        kind = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        _check(cudart.cudaMemcpy(self._device, host.ctypes.data, host.nbytes, kind), "cudaMemcpy")
        self._next += 1
        return [self._device]

    def read_calibration_cache(self) -> bytes | None:
        """The cache bytes when calib.cache exists (checked to parse), else None."""
        if not self.cache_path.is_file():
            return None
        data = self.cache_path.read_bytes()
        parse_cache(data, str(self.cache_path))
        return data

    def write_calibration_cache(self, cache: Any) -> None:
        """Write what TensorRT produced to calib.cache atomically."""
        write_cache_bytes(self.cache_path, bytes(cache))

    def free(self) -> None:
        """Release the device buffer."""
        if self._device:
            _check(_cudart().cudaFree(self._device), "cudaFree")
            self._device = 0


def build_calibration_cache(
    bundle: Path, meta: BundleMeta, data: CalibSet, out: Path, batch: int = 8
) -> Path:
    """Calibrate the bundle's FP32 graph with TensorRT on `data`; write the cache to `out`."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse((bundle / MODEL_FILE).read_bytes(), str(bundle / MODEL_FILE)):
        errors = "; ".join(str(parser.get_error(i).desc()) for i in range(parser.num_errors))
        raise ConfigError(f"{bundle / MODEL_FILE}: TensorRT cannot parse it ({errors})")
    config = builder.create_builder_config()
    config.set_flag(trt.BuilderFlag.INT8)
    calibrator = EntropyCalibrator(out, data, batch)
    config.int8_calibrator = calibrator
    shape = list(data.inputs.shape[1:])
    profile = builder.create_optimization_profile()
    profile.set_shape(
        meta.input.name, trt.Dims([1, *shape]), trt.Dims([batch, *shape]), trt.Dims([batch, *shape])
    )
    config.add_optimization_profile(profile)
    config.set_calibration_profile(profile)
    try:
        engine = builder.build_serialized_network(network, config)
    finally:
        calibrator.free()
    if engine is None or not out.is_file():
        raise ConfigError(
            f"TensorRT INT8 calibration of {bundle / MODEL_FILE} failed; see TensorRT's log above"
        )
    return out


__all__ = ["CACHE_FILE", "EntropyCalibrator", "build_calibration_cache"]

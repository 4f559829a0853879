"""The legacy INT8 route: TensorRT entropy calibration that writes the bundle's calib.cache.

TensorRT deprecated implicit calibration in 10.1 in favour of Q/DQ graphs (model.int8.onnx), but
JetPack devices on TensorRT 10.0 still build INT8 engines this way. The runtime's calibrator
(simokit.runtime.trt.calibrator, the one the engine build replays caches with) is fed the same
prepared tensors as ONNX Runtime's calibration (a readers.CalibSet); once calib.cache exists, later
builds (`simokit build --backend tensorrt --int8`) need no images at all.

This module imports TensorRT at import time (through the calibrator, which must subclass a
TensorRT class at module level); import it only inside the function that needs it: `simokit`,
`simokit.calib` and `simokit.runtime` never import it.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import tensorrt as trt

from simokit.calib.readers import CalibSet
from simokit.calib.trt_cache import CACHE_FILE, calibration_profile, parse_cache, write_cache_bytes
from simokit.errors import ConfigError, DataError
from simokit.runtime.bundle import MODEL_FILE, BundleMeta
from simokit.runtime.trt.calibrator import CacheCalibrator


def cache_calibrator(path: Path, data: CalibSet | None = None, batch: int = 8) -> CacheCalibrator:
    """The runtime's calibrator on `path`, calibrating on `data` in full batches of `batch` images.

    With `data=None` it only serves the existing cache (TensorRT then skips calibration). Either way the
    cache is checked to parse before TensorRT reads it, and what TensorRT writes replaces it atomically.
    """
    batches: list[np.ndarray] = []
    if data is None and not path.is_file():
        raise DataError(f"{path} does not exist; run `simokit calib BUNDLE --data SRC --trt-cache`")
    if data is not None:
        # TensorRT wants every batch the same size: the tail that does not fill one is left out.
        full = len(data) // batch
        if full == 0:
            raise DataError(f"TensorRT calibration needs at least {batch} images, got {len(data)}")
        batches = data.batches(batch)[:full]
    check = partial(parse_cache, where=str(path))
    return CacheCalibrator(path, batches, check=check, save=partial(write_cache_bytes, path))


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
    calibrator = cache_calibrator(out, data, batch)
    config.int8_calibrator = calibrator
    low, opt, high = calibration_profile(data.inputs.shape[1:], batch)
    profile = builder.create_optimization_profile()
    profile.set_shape(meta.input.name, trt.Dims(low), trt.Dims(opt), trt.Dims(high))
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


__all__ = ["CACHE_FILE", "build_calibration_cache", "cache_calibrator"]

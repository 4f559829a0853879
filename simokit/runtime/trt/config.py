"""TensorRT builder configuration: optimisation profile, precision flags, INT8 calibrator, DLA,
timing cache, and the FP32 plan applied to the parsed network's layers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from simokit.errors import ConfigError
from simokit.runtime.trt.options import BuildOptions
from simokit.runtime.trt.precision import PinPlan, onnx_node_of
from simokit.runtime.trt.profiles import Profile

if TYPE_CHECKING:
    import tensorrt as trt

Log = Callable[[str], None]


def configure(
    builder: trt.Builder,
    config: trt.IBuilderConfig,
    opts: BuildOptions,
    typed: bool,
    profile: Profile,
) -> object:
    """Set profile, precision, memory, level and DLA; returns what must live until the build ends."""
    import tensorrt as trt

    shapes = builder.create_optimization_profile()
    dims = [trt.Dims(list(s)) for s in (profile.min, profile.opt, profile.max)]
    shapes.set_shape(profile.input, *dims)
    config.add_optimization_profile(shapes)
    if opts.workspace_gb is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(opts.workspace_gb * 2**30))
    if opts.opt_level is not None:
        config.builder_optimization_level = opts.opt_level
    keep: object = None
    if not typed:
        if opts.fp16:
            set_flag(config, "FP16")
        if opts.int8:
            set_flag(config, "INT8")
            keep = _calibrator(config, opts.calib_cache, shapes)
    if opts.dla_core is not None:
        if opts.dla_core >= builder.num_DLA_cores:
            raise ConfigError(f"--dla {opts.dla_core}: this device has {builder.num_DLA_cores} DLA core(s)")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = opts.dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)  # layers DLA cannot run go to the GPU
    return keep


def set_flag(config: trt.IBuilderConfig, name: str) -> None:
    """Set a flag TensorRT 11 removed (FP16, INT8, *_PRECISION_CONSTRAINTS): looked up by name."""
    import tensorrt as trt

    flag: trt.BuilderFlag | None = getattr(trt.BuilderFlag, name, None)
    if flag is None:
        raise ConfigError(f"TensorRT {trt.__version__} has no builder flag {name}")
    config.set_flag(flag)


def _calibrator(config: trt.IBuilderConfig, cache: Path | None, shapes: trt.IOptimizationProfile) -> object:
    """Attach a cache-replaying calibrator when a cache is given (Q/DQ graphs need none)."""
    if cache is None:
        return None
    try:
        from simokit.runtime.trt.calibrator import CacheCalibrator
    except (ImportError, AttributeError):  # TensorRT 11 dropped the implicit calibrators
        raise ConfigError("this TensorRT has no implicit INT8 calibration; use a Q/DQ ONNX instead") from None
    calibrator = CacheCalibrator(Path(cache))
    config.int8_calibrator = calibrator
    config.set_calibration_profile(shapes)
    return calibrator


def apply_plan(
    network: trt.INetworkDefinition, plan: PinPlan, known: frozenset[str], log: Log
) -> dict[str, int]:
    """Pin the plan's layers to FP32 and make its tensors FP32; returns the counts."""
    import tensorrt as trt

    floats = (trt.DataType.FLOAT, trt.DataType.HALF)
    pinned = retyped = 0
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        outs = [layer.get_output(j) for j in range(layer.num_outputs)]
        if not outs or any(t.dtype not in floats for t in outs):
            continue  # shape and integer layers have no float precision to pin
        node = onnx_node_of(layer.name, layer.metadata, known)
        if node in plan.nodes:
            layer.precision = trt.float32
            for j in range(len(outs)):
                layer.set_output_type(j, trt.float32)
            pinned += 1
            continue
        hits = [j for j, t in enumerate(outs) if t.name in plan.tensors]
        for j in hits:  # the producer of a LayerNorm/Softmax input hands it over in FP32
            layer.set_output_type(j, trt.float32)
        retyped += 1 if hits else 0
    if plan.nodes and not pinned:
        log("build-engine: WARNING no TensorRT layer matched the FP32 plan; FP16 LayerNorm may overflow")
    log(f"build-engine: FP32 in {pinned} layers (+{retyped} FP32 outputs) for {plan.layernorms} LayerNorms")
    return {"pinned_layers": pinned, "fp32_output_layers": retyped}


def plan_summary(plan: PinPlan | None) -> dict[str, int]:
    """The plan's counts, prefixed for the sidecar."""
    return {f"plan_{k}": v for k, v in plan.summary().items()} if plan else {}


def attach_timing_cache(config: trt.IBuilderConfig, path: Path | None, log: Log) -> None:
    """Reuse tactic timings from `path` (created on first build) so rebuilds take seconds."""
    if path is None:
        return
    data = Path(path).read_bytes() if Path(path).is_file() else b""
    cache = config.create_timing_cache(data)
    if not config.set_timing_cache(cache, False):
        log(f"build-engine: {path} is from another device or TensorRT; starting a fresh timing cache")
        config.set_timing_cache(config.create_timing_cache(b""), False)

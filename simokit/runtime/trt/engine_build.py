"""Build `<bundle>/model.engine` (+ sidecar) from the bundle's ONNX graph with TensorRT 10.

Steps: parse the ONNX into an explicit-batch network (strongly typed on request, or when the
TensorRT has no FP16/INT8 builder flags, as in TensorRT 11), one optimisation profile for the
dynamic batch (and height/width if exported dynamic; a frame-IO graph's frame sizes, --frame-min/
--frame-opt/--frame-max, not yet executed on TensorRT), precision flags, the FP32 plan for FP16
builds (precision.py), workspace limit, optimisation level, a timing cache reused across builds,
optional DLA core with GPU fallback, then serialize and publish engine and sidecar atomically.
Engines are tied to the TensorRT version and GPU: build on the device that runs them.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from simokit.cache import atomic_path
from simokit.errors import ConfigError
from simokit.runtime.bundle import BundleError, BundleMeta, GraphIO, read_meta
from simokit.runtime.capabilities import require
from simokit.runtime.manifest import record_files
from simokit.runtime.trt import ENGINE_FILE, SIDECAR_FILE
from simokit.runtime.trt.config import Log, apply_plan, attach_timing_cache, configure, plan_summary, set_flag
from simokit.runtime.trt.options import BuildOptions
from simokit.runtime.trt.precision import all_node_names, frame_plan, has_qdq, plan_fp32
from simokit.runtime.trt.profiles import Profile, profile_for
from simokit.runtime.trt.sidecar import EngineInfo, file_sha256, sidecar_json

if TYPE_CHECKING:
    import tensorrt as trt


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def build_engine(bundle: str | Path, opts: BuildOptions, log: Log = _stderr) -> EngineInfo:
    """Build and publish `<bundle>/model.engine` and its sidecar; returns what the sidecar records.

    Raises ConfigError when TensorRT/cuda-python are missing or an option cannot apply, and
    BundleError when the bundle or its graph cannot be built. Nothing is written unless the
    build succeeds.
    """
    root = Path(bundle)
    meta = read_meta(root)
    opts.check_io(meta.input.io is GraphIO.FRAME)  # wrong size flags fail here, before TensorRT loads
    onnx_path = root / opts.onnx_file
    if not onnx_path.is_file():
        raise BundleError(f"{onnx_path} not found; --onnx names a graph file inside the bundle")
    require("tensorrt")
    try:
        import onnx
    except ImportError:
        raise ConfigError("build-engine reads the graph with the onnx package: pip install onnx") from None
    import tensorrt as trt

    from simokit.runtime.trt.cuda import device_info

    gpu, capability = device_info()
    graph = onnx.load(str(onnx_path), load_external_data=False)
    typed = _strongly_typed(opts, has_qdq(graph))
    plan = None
    if opts.fp16 and not typed:
        plan = plan_fp32(graph, opts.fp32_blocks) if opts.pin else frame_plan(graph)
    log(f"build-engine: TensorRT {trt.__version__} on {gpu} (compute {capability}), {opts.precision}")

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = _parse(builder, logger, onnx_path, typed)
    profile = _check_io(network, meta, opts)
    config = builder.create_builder_config()
    keep_alive = configure(builder, config, opts, typed, profile)
    pins = apply_plan(network, plan, all_node_names(graph), log) if plan else {}
    if pins.get("pinned_layers"):
        # DLA has no FP32: let pinned layers move to the GPU instead of failing the build
        mode = "PREFER" if opts.dla_core is not None else "OBEY"
        set_flag(config, f"{mode}_PRECISION_CONSTRAINTS")
    attach_timing_cache(config, opts.timing_cache, log)
    serialized = builder.build_serialized_network(network, config)
    del keep_alive  # the calibrator must outlive the build
    if serialized is None:
        raise BundleError(f"TensorRT could not build {root / ENGINE_FILE}; see its messages above")
    data = bytes(serialized)
    if opts.timing_cache is not None:
        with atomic_path(Path(opts.timing_cache)) as tmp:
            tmp.write_bytes(bytes(config.get_timing_cache().serialize()))
    extra = {**pins, **plan_summary(plan)}
    info = _info(trt.__version__, gpu, capability, opts, profile, onnx_path, data, extra, meta.input.io)
    _publish(root, data, info)
    log(f"build-engine: wrote {root / ENGINE_FILE} ({len(data) / 2**20:.1f} MiB) and {SIDECAR_FILE}")
    return info


def _strongly_typed(opts: BuildOptions, qdq: bool) -> bool:
    """Whether to build a strongly typed network: asked for, or forced by a TensorRT without flags."""
    import tensorrt as trt

    if opts.strongly_typed:
        return True
    if hasattr(trt.BuilderFlag, "FP16"):
        return False
    version = trt.__version__
    if opts.fp16:
        raise ConfigError(
            f"TensorRT {version} has no FP16 builder flag (strongly typed only); build from an FP16 graph: "
            "--strongly-typed --onnx model.fp16.onnx"
        )
    if opts.int8 and not qdq:
        raise ConfigError(f"TensorRT {version} needs an explicitly quantised (Q/DQ) ONNX for INT8")
    return True


def _parse(builder: trt.Builder, logger: trt.ILogger, path: Path, typed: bool) -> trt.INetworkDefinition:
    import tensorrt as trt

    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if typed else 0
    network = builder.create_network(flags)  # explicit batch is TensorRT 10's only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(path)):  # from the file, so external weights resolve
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BundleError(f"TensorRT cannot parse {path}: {errors or 'no details'}")
    return network


def _check_io(network: trt.INetworkDefinition, meta: BundleMeta, opts: BuildOptions) -> Profile:
    """The graph must have the bundle's one input and task outputs; returns the input's profile."""
    if network.num_inputs != 1:
        raise BundleError(f"the graph has {network.num_inputs} inputs; a bundle graph has one")
    outputs = [network.get_output(i).name for i in range(network.num_outputs)]
    if outputs != list(meta.tasks):
        raise BundleError(f"graph outputs {outputs} differ from meta.json tasks {list(meta.tasks)}")
    tensor = network.get_input(0)
    shape = [tensor.shape[i] for i in range(len(tensor.shape))]
    frame = opts.check_io(meta.input.io is GraphIO.FRAME)
    if frame is not None:  # any frame size in the ranges, not only multiples of the patch size
        return profile_for(tensor.name, shape, meta.input.kind, opts.batch, *frame, multiple=1)
    return profile_for(tensor.name, shape, meta.input.kind, opts.batch, opts.height, opts.width)


def _info(
    version: str,
    gpu: str,
    capability: str,
    opts: BuildOptions,
    profile: Profile,
    onnx_path: Path,
    data: bytes,
    extra: dict[str, int],
    io: GraphIO,
) -> EngineInfo:
    options: dict[str, object] = {"workspace_gb": opts.workspace_gb, "opt_level": opts.opt_level}
    options["fp32_blocks"] = opts.fp32_blocks
    options["io"] = io.value  # frame: the profile's height/width are camera-frame sizes
    return EngineInfo(
        tensorrt=version,
        gpu=gpu,
        compute_capability=capability,
        precision=opts.precision,
        profiles=[profile.to_dict()],
        onnx_file=onnx_path.name,
        onnx_sha256=file_sha256(onnx_path),
        engine_sha256=hashlib.sha256(data).hexdigest(),
        dla_core=opts.dla_core,
        extra={"options": options, **extra},
    )


def _publish(root: Path, data: bytes, info: EngineInfo) -> None:
    """Engine and sidecar each land by rename; the sidecar's engine hash catches a torn pair."""
    with atomic_path(root / ENGINE_FILE) as engine_tmp, atomic_path(root / SIDECAR_FILE) as side_tmp:
        engine_tmp.write_bytes(data)
        side_tmp.write_text(sidecar_json(info))
    record_files(root, [ENGINE_FILE, SIDECAR_FILE])

"""`simokit build-engine`: the bundle's TensorRT engine, built on this GPU."""

from __future__ import annotations

import argparse
from pathlib import Path

from simokit.cli.groups import add_bundle, from_args

HELP = "build the bundle's TensorRT engine on this GPU (model.engine)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """build-engine's flags: precision, the graph file, builder limits and optimisation profiles."""
    add_bundle(p)
    p.add_argument("--fp16", action="store_true", help="FP16 (LayerNorm, Softmax, late residuals kept FP32)")
    p.add_argument("--int8", action="store_true", help="INT8 kernels: a Q/DQ --onnx graph or a --calib-cache")
    p.add_argument("--calib-cache", help="TensorRT INT8 calibration cache (legacy implicit INT8)")
    p.add_argument("--onnx", default="model.onnx", help="graph file inside the bundle (default: %(default)s)")
    p.add_argument("--strongly-typed", action="store_true", help="precision from the graph's own types")
    p.add_argument("--workspace-gb", type=float, help="builder workspace limit in GiB (default: TensorRT's)")
    p.add_argument("--opt-level", type=int, help="builder optimisation level 0-5 (TensorRT default 3)")
    p.add_argument("--batch", help="batch profile min,opt,max (default: 1,1,8 if the batch is dynamic)")
    p.add_argument("--height", help="height profile min,opt,max for a dynamic-size graph")
    p.add_argument("--width", help="width profile min,opt,max for a dynamic-size graph")
    from simokit.runtime.trt.profiles import FRAME_MAX, FRAME_MIN, FRAME_OPT

    for bound, (h, w) in (("min", FRAME_MIN), ("opt", FRAME_OPT), ("max", FRAME_MAX)):
        p.add_argument(
            f"--frame-{bound}", help=f"frame-IO bundle: {bound} frame HxW of the profile ({h}x{w})"
        )
    p.add_argument("--dla", type=int, help="run on this DLA core (Jetson), GPU fallback for the rest")
    p.add_argument("--timing-cache", help="tactic timing cache file, read and updated (faster rebuilds)")
    p.add_argument("--fp32-blocks", type=int, default=2, help="last blocks whose residual adds stay FP32")
    p.add_argument("--no-pin", action="store_true", help="let TensorRT pick every layer's precision")


def int8_inputs(bundle: Path, int8: bool, calib_cache: str | None, onnx_file: str) -> tuple[str | None, str]:
    """(calibration cache, graph file): with a bare --int8, what `simokit calib` left in the bundle,
    the Q/DQ graph first, else the legacy cache; otherwise the flags as given."""
    if int8 and not calib_cache and onnx_file == "model.onnx":
        if (bundle / "model.int8.onnx").is_file():
            return calib_cache, "model.int8.onnx"
        if (bundle / "calib.cache").is_file():
            return str(bundle / "calib.cache"), onnx_file
    return calib_cache, onnx_file


def handle(args: argparse.Namespace) -> int:
    """Build the bundle's TensorRT engine on this GPU: model.engine + model.engine.json."""
    from simokit.runtime.bundle import require_graph
    from simokit.runtime.trt.engine_build import build_engine
    from simokit.runtime.trt.options import BuildOptions
    from simokit.runtime.trt.profiles import Range, parse_frame_size

    def ranged(text: str | None, what: str) -> Range | None:
        return Range.parse(text, what) if text else None

    def framed(bound: str) -> tuple[int, int] | None:
        text = getattr(args, f"frame_{bound}")
        return parse_frame_size(text, f"frame-{bound}") if text else None

    calib_cache, onnx_file = int8_inputs(Path(args.bundle), args.int8, args.calib_cache, args.onnx)
    opts = from_args(
        BuildOptions,
        args,
        calib_cache=Path(calib_cache) if calib_cache else None,
        batch=ranged(args.batch, "batch"),
        height=ranged(args.height, "height"),
        width=ranged(args.width, "width"),
        dla_core=args.dla,
        timing_cache=Path(args.timing_cache) if args.timing_cache else None,
        pin=not args.no_pin,
        onnx_file=onnx_file,
        frame_min=framed("min"),
        frame_opt=framed("opt"),
        frame_max=framed("max"),
    )
    require_graph(args.bundle, "build-engine")
    info = build_engine(Path(args.bundle), opts)
    profile = info.profiles[0]
    print(f"engine: {args.bundle}/model.engine  (TensorRT {info.tensorrt}, {info.precision}, {info.gpu})")
    print(f"profile {profile['input']}: min {profile['min']} opt {profile['opt']} max {profile['max']}")
    return 0

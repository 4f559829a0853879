"""`simokit build`: experts in, one verified ONNX bundle out (optionally its TensorRT engine too)."""

from __future__ import annotations

import argparse
from pathlib import Path

from simokit.cli.groups import add_config_args, add_own_args, from_args, pipeline_config

HELP = "experts -> merged, re-aligned, verified ONNX bundle"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """build's flags: --out, the graph's layout and precision, the backend, and the recipe."""
    p.add_argument("--out", required=True, help="bundle directory to write (replaced atomically)")
    p.add_argument(
        "--input",
        choices=["uint8", "float"],
        default="uint8",
        help="graph input: uint8 (B,H,W,3) RGB with normalisation inside, or float (B,3,H,W)",
    )
    p.add_argument(
        "--io",
        choices=["frame", "model"],
        default=None,
        help="frame (default): the graph takes uint8 BGR camera frames of any size and does resizing, "
        "argmax and upsampling itself; model (the default with --input float or --dynamic-size): the "
        "model-size graph, for callers that resize and feed tensors themselves",
    )
    p.add_argument(
        "--output-size",
        default="input",
        help="frame IO: outputs at the frame's size (input), the model's (model) or a fixed HxW",
    )
    p.add_argument(
        "--seg-output",
        choices=["logits", "labels"],
        default=None,
        help="class outputs as labels (default with --io frame) or logits (default with --io model; "
        "with --io frame, logits stay at the model's size)",
    )
    p.add_argument("--verify-images", type=int, default=8, help="test images for torch-vs-ONNX verification")
    p.add_argument(
        "--dynamic-size",
        action="store_true",
        help="graph takes any height/width (multiples of 14), not just the recipe's",
    )
    p.add_argument(
        "--fp16", action="store_true", help="also write model.fp16.onnx (LayerNorm/Softmax kept in FP32)"
    )
    p.add_argument("--no-slim", action="store_true", help="skip onnxslim graph simplification")
    add_own_args(p)
    p.add_argument(
        "--backend",
        choices=["onnxruntime", "tensorrt"],
        default="onnxruntime",
        help="tensorrt: also build model.engine on this GPU (FP16 with --fp16); default: ONNX only",
    )
    add_config_args(p, file_argument=True)


def handle(args: argparse.Namespace) -> int:
    """Experts in, one verified ONNX bundle out: merge (cached), re-align, export, verify, publish."""
    from simokit.errors import ConfigError
    from simokit.export.onnx import ExportSpec
    from simokit.pipeline.build import build_merged_bundle, build_routed_bundle, check_build_request
    from simokit.pipeline.own_study import own_size, own_tasks

    cfg = pipeline_config(args)
    check_build_request(cfg, args.backend, fp16=args.fp16, dynamic_size=args.dynamic_size)
    if cfg.own.base and not cfg.own.active:
        raise ConfigError("--base/--experts: give --calib too, the frames to fit and report on")
    frame = graph_io(args.io, args.input, args.dynamic_size) == "frame"
    height, width = own_size(cfg) if cfg.own.active else (cfg.data.size, cfg.data.size)
    spec = from_args(
        ExportSpec,
        args,
        tasks=own_tasks(cfg) if cfg.own.active else cfg.experts.tasks,
        height=height,
        width=width,
        input_kind=args.input,
        dynamic_hw=args.dynamic_size,
        io="frame" if frame else "model",
        seg_output=args.seg_output or ("labels" if frame else "logits"),
        slim=not args.no_slim,
    )
    if cfg.routing.domains:  # several domains: one engine per domain behind a SiM router
        routed, res = build_routed_bundle(cfg, Path(args.out), spec, args.verify_images, not args.quiet)
        print((routed / "routing_report.md").read_text())
        domains = ", ".join(res.router.domains)
        print(f"routed bundle: {routed}  (domains {domains}, router block {res.router.block})")
        return 0
    if cfg.own.active:
        from simokit.pipeline.own_build import build_own_bundle

        out, row, agree = build_own_bundle(cfg, Path(args.out), spec, args.verify_images, not args.quiet)
        print((out / "report.md").read_text())
        print(f"bundle: {out}  ({row.name}, {height}x{width}, mean agreement {agree:.3f})")
    else:
        out, row = build_merged_bundle(cfg, Path(args.out), spec, args.verify_images, not args.quiet)
        print(f"bundle: {out}  ({row.name}, test score {row.score:.3f})")
    if args.backend == "tensorrt":
        from simokit.runtime.trt.engine_build import build_engine
        from simokit.runtime.trt.options import BuildOptions

        info = build_engine(out, BuildOptions(fp16=args.fp16))
        print(f"engine: {out / 'model.engine'}  (TensorRT {info.tensorrt}, {info.precision}, {info.gpu})")
    return 0


def graph_io(io: str | None, input_kind: str, dynamic_size: bool) -> str:
    """The graph's IO: --io as given, else frame, or model when --input float / --dynamic-size ask for
    a model-size tensor input (frame IO takes uint8 frames of any size, so neither fits it)."""
    from simokit.errors import ConfigError

    model_only = [
        flag
        for flag, on in (("--input float", input_kind == "float"), ("--dynamic-size", dynamic_size))
        if on
    ]
    if io is None:
        return "model" if model_only else "frame"
    if io == "frame" and model_only:
        raise ConfigError(
            f"--io frame takes uint8 camera frames of any size, not {' or '.join(model_only)}: "
            "use --io model (or leave --io out)"
        )
    return io

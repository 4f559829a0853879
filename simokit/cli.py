"""The `simokit` command line: one entry point, one sub-command per step of the pipeline."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from simokit import __version__
from simokit.errors import SimokitError
from simokit.recipe import PipelineConfig
from simokit.runtime.bundle import is_routed, require_graph


def _pipeline_config(args: argparse.Namespace) -> PipelineConfig:
    from simokit.config import apply_overrides, from_dict, load_yaml

    path = getattr(args, "config_file", None) or args.config
    data = load_yaml(path) if path else {}
    return from_dict(PipelineConfig, apply_overrides(data, args.set), where=str(path or "config"))


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo pipeline and print its table."""
    from simokit.pipeline.demo import run_demo

    cfg = _pipeline_config(args)
    result = run_demo(cfg, Path(args.out), progress=not args.quiet)
    print(result.table)
    from simokit.profile.compare import table as profile_table

    print(f"\n{profile_table(result.profile)}")
    print(f"\nreport:  {result.report}\nmerge:   {result.merge.report}\nmodel:   {result.merge.checkpoint}")
    print(f"bundle:  {result.bundle}  (try: simokit inspect {result.bundle})")
    print("wall time: " + ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items()))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train (or fetch from cache) the base encoder or one expert and print the checkpoint path."""
    from simokit.tasks import get_task
    from simokit.train.pipeline import ensure_base, ensure_expert, load_data

    cfg = _pipeline_config(args)
    if args.what == "expert":
        if not args.task:
            raise SimokitError("train expert needs --task (one of seg, depth, normal, edge, shading)")
        get_task(args.task)
    splits = load_data(cfg, progress=not args.quiet)
    if args.what == "base":
        path = ensure_base(cfg, splits, progress=not args.quiet)
    else:
        path = ensure_expert(cfg, args.task, splits, progress=not args.quiet)
    print(path)
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    """Merge the experts (given, or the recipe's cached ones), select, re-align, report."""
    from simokit.pipeline.merging import merge_and_report
    from simokit.pipeline.report import table
    from simokit.train.pipeline import ensure_experts, load_data

    cfg = _pipeline_config(args)
    if bool(args.base) != bool(args.experts):
        raise SimokitError("give both --base and --experts, or neither (then the recipe's experts are used)")
    splits = load_data(cfg, progress=not args.quiet, merge=True)
    if args.base:
        base, experts = Path(args.base), [Path(p) for p in args.experts]
    else:
        base, experts = ensure_experts(cfg, splits, progress=not args.quiet)
    out = merge_and_report(cfg.merge, base, experts, splits, Path(args.out), cfg.eval_batch, not args.quiet)
    print(table(out.result.rows, out.result.expert_test))
    print(f"\nmerged checkpoint: {out.checkpoint}\nreport: {out.report}")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    """Experts in, one verified ONNX bundle out: merge (cached), re-align, export, verify, publish."""
    import tempfile

    from simokit.export.onnx import ExportSpec
    from simokit.pipeline.build import build_bundle
    from simokit.pipeline.merging import merge_and_report
    from simokit.train.pipeline import ensure_experts, load_data

    if args.backend == "tensorrt":  # fail before the long build, not after it
        from simokit.runtime.capabilities import require

        require("tensorrt")
        if args.dynamic_size:
            raise SimokitError("--dynamic-size needs size ranges: use simokit build-engine --height/--width")
    cfg = _pipeline_config(args)
    if cfg.routing.domains and cfg.routing.delta != "none" and (args.fp16 or args.backend == "tensorrt"):
        raise SimokitError(
            f"routing.delta={cfg.routing.delta} stores FP32 weight deltas that only ONNX Runtime opens; "
            "drop --fp16 / --backend tensorrt, or build with --set routing.delta=none"
        )
    tasks, size = cfg.experts.tasks, cfg.data.size
    spec = ExportSpec(
        tasks,
        size,
        size,
        input_kind=args.input,
        seg_output=args.seg_output,
        dynamic_hw=args.dynamic_size,
        slim=not args.no_slim,
        fp16=args.fp16,
    )
    if cfg.routing.domains:  # several domains: one engine per domain behind a SiM router
        from simokit.pipeline.build import build_routed_bundle

        routed, res = build_routed_bundle(cfg, Path(args.out), spec, args.verify_images, not args.quiet)
        print((routed / "routing_report.md").read_text())
        domains = ", ".join(res.router.domains)
        print(f"routed bundle: {routed}  (domains {domains}, router block {res.router.block})")
        return 0
    splits = load_data(cfg, progress=not args.quiet, merge=True)
    base, experts = ensure_experts(cfg, splits, progress=not args.quiet)
    with tempfile.TemporaryDirectory() as work:
        merged = merge_and_report(
            cfg.merge, base, experts, splits, Path(work), cfg.eval_batch, not args.quiet
        )
        out, row = build_bundle(Path(args.out), merged, base, experts, splits, spec, args.verify_images)
    print(f"bundle: {out}  ({row.name}, test score {row.score:.3f})")
    if args.backend == "tensorrt":
        from simokit.runtime.trt.engine_build import build_engine
        from simokit.runtime.trt.options import BuildOptions

        info = build_engine(out, BuildOptions(fp16=args.fp16))
        print(f"engine: {out / 'model.engine'}  (TensorRT {info.tensorrt}, {info.precision}, {info.gpu})")
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    """Time the merged graph against the separate experts (a bundle, or random weights of --arch)."""
    import tempfile

    from simokit.profile.compare import bundle_graphs, profile_graphs, table, write_outputs
    from simokit.runtime.backends.triton import is_triton_url

    batches = tuple(int(b) for b in args.batches.split(","))
    if args.target and is_triton_url(args.target):  # a served bundle: time the engine itself
        from simokit.profile.engine_bench import engine_table, profile_engine
        from simokit.runtime import load

        print(engine_table(profile_engine(load(args.target), batches, args.warmup, args.iters)))
        return 0
    if args.target and not args.arch and is_routed(args.target):  # router + one engine per domain
        return _profile_routed(args, batches)
    flops: float | None
    with tempfile.TemporaryDirectory() as work:
        if args.arch:
            from simokit.profile.arch import export_arch

            tasks = tuple(t.strip() for t in args.tasks.split(","))
            merged, experts, flops = export_arch(args.arch, args.size, tasks, Path(work))
            title = f"{args.arch} at {args.size}px, tasks {', '.join(tasks)}, random weights"
        elif args.target:
            require_graph(args.target, "profile")
            merged, experts, flops = bundle_graphs(Path(args.target))
            title = f"bundle {args.target}"
        else:
            raise SimokitError("give a bundle directory or --arch (e.g. --arch vits14 --size 224)")
        result = profile_graphs(merged, experts, flops, batches, args.threads, args.warmup, args.iters)
    if args.arch:
        import torch

        from simokit.profile.arch import time_torch_eager

        if args.threads:
            torch.set_num_threads(args.threads)
        eager = time_torch_eager(args.arch, args.size, tasks, batches[0], args.warmup, args.iters)
        result["torch_eager"] = {"p50_ms": eager.p50_ms, "batch": eager.batch}
        result["ort_vs_torch_eager"] = result["merged"]["p50_ms"] / eager.p50_ms
    result["title"] = title
    print(f"{title}\n\n{table(result)}")
    if args.data and args.target and not args.arch:
        from simokit.profile.accuracy import accuracy_table, bundle_accuracy

        result["accuracy"] = bundle_accuracy(Path(args.target), args.data, args.threads)
        print(f"\n{accuracy_table(result['accuracy'])}")
    write_outputs(result, Path(args.json) if args.json else None, Path(args.plot) if args.plot else None)
    return 0


def _profile_routed(args: argparse.Namespace, batches: tuple[int, ...]) -> int:
    import json

    from simokit.profile.engine_bench import profile_routed, routed_table
    from simokit.runtime import load
    from simokit.runtime.routed import RoutedEngine

    if args.data:
        raise SimokitError(
            "--data compares a merged graph with its experts; a routed bundle's accuracy "
            "table is in its routing_report.md"
        )
    engine = load(args.target, threads=args.threads)
    assert isinstance(engine, RoutedEngine)
    result = profile_routed(engine, batches, args.warmup, args.iters)
    print(routed_table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    """Print what a bundle holds: tasks, IO, sizes, provenance and verification errors."""
    from simokit.runtime.describe import describe

    print(describe(Path(args.path)))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate a checkpoint on the embedded validation scenes and print its metrics."""
    from simokit.tasks.evaluate import evaluate
    from simokit.train.pipeline import load_data, load_model

    cfg = _pipeline_config(args)
    model = load_model(Path(args.checkpoint))
    splits = load_data(cfg, progress=not args.quiet)
    metrics = evaluate(model, splits.val, tuple(model.heads), cfg.eval_batch, progress=not args.quiet)
    for task, values in metrics.items():
        print(task + ": " + ", ".join(f"{k} {v:.4f}" for k, v in values.items()))
    return 0


def cmd_calib(args: argparse.Namespace) -> int:
    """Calibrate a bundle to INT8 (Q/DQ ONNX, optional TensorRT cache) and print the report."""
    from simokit.calib.workflow import CalibOptions, calibrate_bundle

    opts = CalibOptions(
        data=args.data,
        method=args.method,
        n=args.n,
        exclude=tuple(args.exclude),
        keep_heads=not args.quantize_heads,
        sensitivity=args.sensitivity,
        budget=args.budget,
        mean_budget=args.mean_budget,
        eval=args.eval,
        every=args.every,
        threads=args.threads,
        trt_cache=args.trt_cache,
        progress=not args.quiet,
    )
    require_graph(args.bundle, "calib")
    result = calibrate_bundle(Path(args.bundle), opts)
    print(result.report)
    print("wrote: " + ", ".join(str(p) for p in result.files))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Run a bundle on a camera, video file, network stream or image folder; print statistics at the end."""
    import logging
    import os

    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # our one-line errors replace FFmpeg's chatter
    from simokit.runtime import load
    from simokit.runtime.sinks import make_sinks
    from simokit.runtime.sources import open_source, require_cv2
    from simokit.runtime.stream import Stream
    from simokit.runtime.stream_types import Reconnect

    cv2 = require_cv2("simokit run")
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    if not logging.getLogger().handlers:
        level = logging.WARNING if args.quiet else logging.INFO
        logging.basicConfig(level=level, format="simokit run: %(message)s")
    source = open_source(args.source, args.width, args.height, args.fps)
    engine = load(Path(args.bundle), backend=args.backend, threads=args.threads)
    reconnect = Reconnect(attempts=args.reconnect_attempts)
    stream = Stream(engine, source, max_frames=args.max_frames, reconnect=reconnect)
    stream.sinks += make_sinks(
        engine.meta,
        stream.stats,
        window=not args.headless,
        record=args.record,
        save=args.save,
        fps=lambda: source.fps or args.fps or 30.0,
        label=_domain_label(engine),
    )
    print(f"{engine.describe()} on {source.uri}", flush=True)
    stats = stream.run()
    print(stats.summary())
    if hasattr(engine, "last_domains"):  # a routed bundle: which domain engine ran how many frames
        print(engine.describe())
    if args.record and Path(args.record).exists():
        print(f"recording: {args.record}")
    return 0


def _domain_label(engine: object) -> Callable[[], str] | None:
    """For a routed engine, the overlay names the domain whose engine ran the latest frame."""
    if not hasattr(engine, "last_domains"):
        return None
    return lambda: "domain " + (engine.last_domains[-1] if engine.last_domains else "-")


def cmd_build_engine(args: argparse.Namespace) -> int:
    """Build the bundle's TensorRT engine on this GPU: model.engine + model.engine.json."""
    from simokit.runtime.trt.engine_build import build_engine
    from simokit.runtime.trt.options import BuildOptions
    from simokit.runtime.trt.profiles import Range

    def ranged(text: str | None, what: str) -> Range | None:
        return Range.parse(text, what) if text else None

    calib_cache, onnx_file = args.calib_cache, args.onnx
    if args.int8 and not calib_cache and onnx_file == "model.onnx":
        # what `simokit calib` left in the bundle: the Q/DQ graph first, else the legacy cache
        bundle = Path(args.bundle)
        if (bundle / "model.int8.onnx").is_file():
            onnx_file = "model.int8.onnx"
        elif (bundle / "calib.cache").is_file():
            calib_cache = str(bundle / "calib.cache")
    opts = BuildOptions(
        fp16=args.fp16,
        int8=args.int8,
        calib_cache=Path(calib_cache) if calib_cache else None,
        workspace_gb=args.workspace_gb,
        opt_level=args.opt_level,
        batch=ranged(args.batch, "batch"),
        height=ranged(args.height, "height"),
        width=ranged(args.width, "width"),
        dla_core=args.dla,
        timing_cache=Path(args.timing_cache) if args.timing_cache else None,
        fp32_blocks=args.fp32_blocks,
        pin=not args.no_pin,
        strongly_typed=args.strongly_typed,
        onnx_file=onnx_file,
    )
    require_graph(args.bundle, "build-engine")
    info = build_engine(Path(args.bundle), opts)
    profile = info.profiles[0]
    print(f"engine: {args.bundle}/model.engine  (TensorRT {info.tensorrt}, {info.precision}, {info.gpu})")
    print(f"profile {profile['input']}: min {profile['min']} opt {profile['opt']} max {profile['max']}")
    return 0


def cmd_export_triton(args: argparse.Namespace) -> int:
    """Write the bundle into a Triton model repository: config.pbtxt, 1/model.onnx (or .plan), meta.json."""
    from simokit.export.triton import TritonOptions, export_triton

    opts = TritonOptions(args.name, args.backend, args.max_batch, args.instances, args.queue_delay_us)
    require_graph(args.bundle, "export-triton")
    out = export_triton(Path(args.bundle), Path(args.repo), opts)
    print(f"model: {out}  (start Triton with --model-repository {Path(args.repo).resolve()})")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the bundle on Triton Inference Server (nvidia-pytriton) until Ctrl-C."""
    from simokit.runtime.serve import Endpoints, ServeOptions, serve

    opts = ServeOptions(
        port=args.port,
        host=args.host,
        name=args.name,
        max_batch=args.max_batch,
        queue_delay_us=args.queue_delay_us,
        dynamic_batching=not args.no_dynamic_batching,
        instances=args.instances,
        threads=args.threads,
    )

    def ready(ends: Endpoints) -> None:
        print(f"serving {args.bundle}\n  {ends.http}  (HTTP)\n  {ends.grpc}  (gRPC)", flush=True)
        print(f"  metrics {ends.metrics}, log {ends.log}\nready; Ctrl-C stops", flush=True)

    serve(Path(args.bundle), opts, ready)
    print("stopped")
    return 0


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML recipe (default: the built-in demo recipe, see configs/demo.yaml)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe value, e.g. --set experts.stage2.lr=5e-4 (repeatable)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="simokit", description="Merge task experts into one deployable engine."
    )
    parser.add_argument("--version", action="version", version=f"simokit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="run the pipeline on the embedded benchmark")
    _add_config_args(p)
    p.add_argument(
        "--out", default="simokit-demo", help="where report.md and figures go (default: %(default)s)"
    )
    p.set_defaults(func=cmd_demo, parser=p)

    p = sub.add_parser("train", help="pre-train the base encoder or fine-tune an expert (cached)")
    p.add_argument("what", choices=["base", "expert"])
    p.add_argument("--task", help="expert task: seg, depth, normal, edge or shading")
    _add_config_args(p)
    p.set_defaults(func=cmd_train, parser=p)

    p = sub.add_parser("merge", help="merge experts, select, re-align; write checkpoint and report")
    p.add_argument("config_file", nargs="?", help="YAML recipe (same as --config)")
    p.add_argument("--base", help="base checkpoint (.safetensors); default: the recipe's cached base")
    p.add_argument("--experts", nargs="+", help="expert checkpoints, one per task")
    p.add_argument("--out", default="simokit-merge", help="output directory (default: %(default)s)")
    _add_config_args(p)
    p.set_defaults(func=cmd_merge, parser=p)

    p = sub.add_parser("build", help="experts -> merged, re-aligned, verified ONNX bundle")
    p.add_argument("config_file", nargs="?", help="YAML recipe (same as --config)")
    p.add_argument("--out", required=True, help="bundle directory to write (replaced atomically)")
    p.add_argument(
        "--input",
        choices=["uint8", "float"],
        default="uint8",
        help="graph input: uint8 (B,H,W,3) RGB with normalisation inside, or float (B,3,H,W)",
    )
    p.add_argument("--seg-output", choices=["logits", "labels"], default="logits")
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
    p.add_argument(
        "--backend",
        choices=["onnxruntime", "tensorrt"],
        default="onnxruntime",
        help="tensorrt: also build model.engine on this GPU (FP16 with --fp16); default: ONNX only",
    )
    _add_config_args(p)
    p.set_defaults(func=cmd_build, parser=p)

    p = sub.add_parser("profile", help="merged engine vs the separate experts: latency, throughput, memory")
    p.add_argument("target", nargs="?", help="bundle directory (built by `simokit build`)")
    p.add_argument("--arch", help="profile random weights of a named encoder instead, e.g. vits14, vitb14")
    p.add_argument("--size", type=int, default=224, help="input size for --arch (default: %(default)s)")
    p.add_argument("--tasks", default="seg,depth,normal", help="heads for --arch (default: %(default)s)")
    p.add_argument("--batches", default="1,8", help="batch sizes (default: %(default)s)")
    p.add_argument("--threads", type=int, help="ONNX Runtime intra-op threads (default: all cores)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--iters", type=int, default=30)
    p.add_argument("--json", help="write the results as JSON here")
    p.add_argument("--plot", help="write a latency bar plot (PNG) here")
    p.add_argument(
        "--data", help="also compare accuracy per task on labelled data: 'scenes[:split]' or an NYUv2 folder"
    )
    p.set_defaults(func=cmd_profile, parser=p)

    p = sub.add_parser("inspect", help="show what a bundle or ONNX file holds")
    p.add_argument("path", help="bundle directory or .onnx file")
    p.set_defaults(func=cmd_inspect, parser=p)

    p = sub.add_parser("eval", help="evaluate a checkpoint on the embedded validation scenes")
    p.add_argument("checkpoint", help="simokit .safetensors checkpoint (expert or merged)")
    _add_config_args(p)
    p.set_defaults(func=cmd_eval, parser=p)

    p = sub.add_parser("build-engine", help="build the bundle's TensorRT engine on this GPU (model.engine)")
    p.add_argument("bundle", help="bundle directory (built by `simokit build`)")
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
    p.add_argument("--dla", type=int, help="run on this DLA core (Jetson), GPU fallback for the rest")
    p.add_argument("--timing-cache", help="tactic timing cache file, read and updated (faster rebuilds)")
    p.add_argument("--fp32-blocks", type=int, default=2, help="last blocks whose residual adds stay FP32")
    p.add_argument("--no-pin", action="store_true", help="let TensorRT pick every layer's precision")
    p.set_defaults(func=cmd_build_engine, parser=p)

    p = sub.add_parser("calib", help="INT8 calibration: Q/DQ model.int8.onnx, report, TensorRT cache")
    p.add_argument("bundle", help="bundle directory (built by `simokit build`)")
    p.add_argument(
        "--data",
        required=True,
        help="calibration frames: image folder, video file, NYUv2-layout folder or 'scenes[:split]'",
    )
    p.add_argument(
        "--method",
        choices=["minmax", "entropy", "percentile"],
        default="percentile",
        help="activation range estimator (default: percentile, 99.999%%)",
    )
    p.add_argument("--n", type=int, default=256, help="calibration images, a fixed subset (default: 256)")
    p.add_argument("--every", type=int, default=10, help="video: use every k-th frame (default: %(default)s)")
    p.add_argument(
        "--exclude",
        nargs="+",
        default=[],
        metavar="NAME",
        help="keep in float: blocks (blocks.3, patch_embed), op types (Conv) or node-name globs",
    )
    p.add_argument("--quantize-heads", action="store_true", help="also quantise each head's output layer")
    p.add_argument("--sensitivity", action="store_true", help="sweep blocks and exclude those over budget")
    p.add_argument("--budget", type=float, default=2.0, help="max drop of any task in points (default: 2)")
    p.add_argument("--mean-budget", type=float, default=1.0, help="max mean drop in points (default: 1)")
    p.add_argument(
        "--eval", default="scenes:test", help="labelled data: 'scenes[:split]', NYUv2 folder or 'none'"
    )
    p.add_argument("--threads", type=int, help="ONNX Runtime intra-op threads (default: all cores)")
    p.add_argument("--trt-cache", action="store_true", help="also write calib.cache (needs TensorRT)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_calib, parser=p)

    p = sub.add_parser("run", help="run a bundle on a camera, video, RTSP/GStreamer stream or image folder")
    p.add_argument("bundle", help="bundle directory (built by `simokit build`)")
    p.add_argument(
        "--source",
        required=True,
        help="0 (camera index), /dev/video0, video.mp4, rtsp://..., gst:<pipeline>, csi://0 or a folder",
    )
    p.add_argument("--backend", default="auto", help="engine backend (default: %(default)s)")
    p.add_argument("--threads", type=int, help="ONNX Runtime intra-op threads (default: all cores)")
    p.add_argument("--width", type=int, default=0, help="camera width to request (default: driver's)")
    p.add_argument("--height", type=int, default=0, help="camera height to request (default: driver's)")
    p.add_argument("--fps", type=float, default=0.0, help="camera frame rate to request (default: driver's)")
    p.add_argument("--record", help="write the tiled overlay video here (.mp4, .avi, .mkv, .mov)")
    p.add_argument("--save", help="folder for per-frame outputs: <index>.png and <index>_<task>.npy")
    p.add_argument("--headless", action="store_true", help="no window (robots, servers, CI)")
    p.add_argument("--max-frames", type=int, default=0, help="stop after N frames (default: until the end)")
    p.add_argument(
        "--reconnect-attempts",
        type=int,
        default=10,
        help="re-open attempts (back-off 0.5 s doubling to 8 s) when a live source drops; -1 = forever",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no periodic statistics, only the summary")
    p.set_defaults(func=cmd_run, parser=p)

    p = sub.add_parser("export-triton", help="write the bundle into a Triton model repository")
    p.add_argument("bundle", help="bundle directory (built by `simokit build`)")
    p.add_argument("--repo", required=True, help="model repository directory (created if missing)")
    p.add_argument("--name", help="model name (default: the bundle directory's name)")
    p.add_argument("--backend", choices=["onnxruntime", "tensorrt"], default="onnxruntime")
    p.add_argument("--max-batch", type=int, default=8, help="max_batch_size (default: %(default)s)")
    p.add_argument("--instances", type=int, default=2, help="model instances (default: %(default)s)")
    p.add_argument("--queue-delay-us", type=int, default=500, help="batcher delay (default: %(default)s)")
    p.set_defaults(func=cmd_export_triton, parser=p)

    p = sub.add_parser("serve", help="serve a bundle on Triton Inference Server (needs simokit[serve])")
    p.add_argument("bundle", help="bundle directory (built by `simokit build`)")
    p.add_argument("--port", type=int, default=8000, help="HTTP port; gRPC +1, metrics +2 (default: 8000)")
    p.add_argument("--host", default="0.0.0.0", help="address to listen on (default: all interfaces)")
    p.add_argument("--name", help="model name (default: the bundle directory's name)")
    p.add_argument("--max-batch", type=int, default=8, help="max_batch_size (default: %(default)s)")
    p.add_argument("--queue-delay-us", type=int, default=500, help="batcher delay (default: %(default)s)")
    p.add_argument("--no-dynamic-batching", action="store_true", help="run each request on its own")
    p.add_argument("--instances", type=int, default=1, help="model instances (default: %(default)s)")
    p.add_argument("--threads", type=int, help="ONNX Runtime intra-op threads (default: all cores)")
    p.set_defaults(func=cmd_serve, parser=p)
    return parser


# What `simokit[build]` brings; a command importing one of these without it gets one line, not a traceback.
BUILD_MODULES = ("torch", "safetensors", "onnx", "onnxslim", "matplotlib")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, run, and turn user errors into one line and a non-zero exit code."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # Report unknown options with the sub-command's usage, which is the one the user needs.
        args.parser.error(f"unrecognized arguments: {' '.join(extra)}")
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except SimokitError as exc:
        print(f"simokit {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] not in BUILD_MODULES:
            raise
        # a robot install (pip install simokit) has the runtime only; say which extra brings the rest
        print(
            f"simokit {args.command}: error: needs {exc.name.split('.')[0]}, part of the build side; "
            "install it with: pip install 'simokit[build]' (bundle, run, profile BUNDLE and inspect do not)",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print(f"simokit {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""The `simokit` command line: one entry point, one sub-command per step of the pipeline."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from simokit import __version__
from simokit.errors import SimokitError
from simokit.recipe import PipelineConfig


def _pipeline_config(args: argparse.Namespace) -> PipelineConfig:
    from simokit.config import apply_overrides, from_dict, load_yaml

    path = getattr(args, "config_file", None) or args.config
    data = load_yaml(path) if path else {}
    return from_dict(PipelineConfig, apply_overrides(data, args.set), where=str(path or "config"))


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo pipeline and print its table."""
    from simokit.demo import run_demo

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
    from simokit.merge.report import table
    from simokit.merge.workflow import merge_and_report
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

    from simokit.export.build import build_bundle
    from simokit.export.onnx import ExportSpec
    from simokit.merge.workflow import merge_and_report
    from simokit.train.pipeline import ensure_experts, load_data

    cfg = _pipeline_config(args)
    tasks, size = cfg.experts.tasks, cfg.data.size
    spec = ExportSpec(tasks, size, size, input_kind=args.input, seg_output=args.seg_output)
    splits = load_data(cfg, progress=not args.quiet, merge=True)
    base, experts = ensure_experts(cfg, splits, progress=not args.quiet)
    with tempfile.TemporaryDirectory() as work:
        merged = merge_and_report(
            cfg.merge, base, experts, splits, Path(work), cfg.eval_batch, not args.quiet
        )
        out, row = build_bundle(Path(args.out), merged, base, experts, splits, spec, args.verify_images)
    print(f"bundle: {out}  ({row.name}, test score {row.score:.3f})")
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    """Time the merged graph against the separate experts (a bundle, or random weights of --arch)."""
    import tempfile

    from simokit.profile.compare import bundle_graphs, profile_graphs, table, write_outputs

    batches = tuple(int(b) for b in args.batches.split(","))
    flops: float | None
    with tempfile.TemporaryDirectory() as work:
        if args.arch:
            from simokit.profile.arch import export_arch

            tasks = tuple(t.strip() for t in args.tasks.split(","))
            merged, experts, flops = export_arch(args.arch, args.size, tasks, Path(work))
            title = f"{args.arch} at {args.size}px, tasks {', '.join(tasks)}, random weights"
        elif args.target:
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
    write_outputs(result, Path(args.json) if args.json else None, Path(args.plot) if args.plot else None)
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
    p.set_defaults(func=cmd_profile, parser=p)

    p = sub.add_parser("inspect", help="show what a bundle or ONNX file holds")
    p.add_argument("path", help="bundle directory or .onnx file")
    p.set_defaults(func=cmd_inspect, parser=p)

    p = sub.add_parser("eval", help="evaluate a checkpoint on the embedded validation scenes")
    p.add_argument("checkpoint", help="simokit .safetensors checkpoint (expert or merged)")
    _add_config_args(p)
    p.set_defaults(func=cmd_eval, parser=p)
    return parser


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
    except KeyboardInterrupt:
        print(f"simokit {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

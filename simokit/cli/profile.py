"""`simokit profile`: the merged graph against the separate experts (latency, throughput, memory)."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from simokit.cli.groups import add_bundle, add_threads
from simokit.errors import SimokitError

HELP = "merged engine vs the separate experts: latency, throughput, memory"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """profile's flags: a bundle or --arch, batch sizes, timing, outputs and --data."""
    add_bundle(p, "target", optional=True)
    p.add_argument("--arch", help="profile random weights of a named encoder instead, e.g. vits14, vitb14")
    p.add_argument("--size", type=int, default=224, help="input size for --arch (default: %(default)s)")
    p.add_argument("--tasks", default="seg,depth,normal", help="heads for --arch (default: %(default)s)")
    p.add_argument("--batches", default="1,8", help="batch sizes (default: %(default)s)")
    add_threads(p)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--iters", type=int, default=30)
    p.add_argument("--json", help="write the results as JSON here")
    p.add_argument("--plot", help="write a latency bar plot (PNG) here")
    p.add_argument(
        "--data", help="also compare accuracy per task on labelled data: 'scenes[:split]' or an NYUv2 folder"
    )


def handle(args: argparse.Namespace) -> int:
    """Time the merged graph against the separate experts (a bundle, or random weights of --arch)."""
    from simokit.profile.compare import table, write_outputs
    from simokit.runtime.backends.triton import is_triton_url
    from simokit.runtime.bundle import is_routed

    batches = tuple(int(b) for b in args.batches.split(","))
    if args.target and is_triton_url(args.target):  # a served bundle: time the engine itself
        from simokit.profile.engine_bench import engine_table, profile_engine
        from simokit.runtime import load

        print(engine_table(profile_engine(load(args.target), batches, args.warmup, args.iters)))
        return 0
    if args.target and not args.arch and is_routed(args.target):  # router + one engine per domain
        return _profile_routed(args, batches)
    result = _profile_graphs(args, batches)
    print(f"{result['title']}\n\n{table(result)}")
    if args.data and args.target and not args.arch:
        from simokit.profile.accuracy import accuracy_table, bundle_accuracy

        result["accuracy"] = bundle_accuracy(Path(args.target), args.data, args.threads)
        print(f"\n{accuracy_table(result['accuracy'])}")
    write_outputs(result, Path(args.json) if args.json else None, Path(args.plot) if args.plot else None)
    return 0


def _profile_graphs(args: argparse.Namespace, batches: tuple[int, ...]) -> dict[str, Any]:
    """Merged vs separate graphs in ONNX Runtime; with --arch also against PyTorch eager."""
    from simokit.profile.compare import bundle_graphs, profile_graphs
    from simokit.runtime.bundle import require_graph

    flops: float | None
    tasks = tuple(t.strip() for t in args.tasks.split(","))
    with tempfile.TemporaryDirectory() as work:
        if args.arch:
            from simokit.profile.arch import export_arch

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
    return result


def _profile_routed(args: argparse.Namespace, batches: tuple[int, ...]) -> int:
    """A routed bundle: the router and each domain's engine, timed on their own."""
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

"""`simokit merge`: merge the experts, select, re-align, write the checkpoint and the report."""

from __future__ import annotations

import argparse
from pathlib import Path

from simokit.cli.groups import add_config_args, pipeline_config

HELP = "merge experts, select, re-align; write checkpoint and report"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """merge's flags: the recipe (also as a positional file), --base/--experts and --out."""
    p.add_argument("--base", help="base checkpoint (.safetensors); default: the recipe's cached base")
    p.add_argument("--experts", nargs="+", help="expert checkpoints, one per task")
    p.add_argument("--out", default="simokit-merge", help="output directory (default: %(default)s)")
    add_config_args(p, file_argument=True)


def handle(args: argparse.Namespace) -> int:
    """Merge the experts (given, or the recipe's cached ones), select, re-align, report."""
    from simokit.pipeline.merging import check_merge_request, merge_and_report
    from simokit.pipeline.report import table
    from simokit.train.pipeline import ensure_experts, load_data

    cfg = pipeline_config(args)
    check_merge_request(args.base, args.experts)
    splits = load_data(cfg, progress=not args.quiet, merge=True)
    if args.base:
        base, experts = Path(args.base), [Path(p) for p in args.experts]
    else:
        base, experts = ensure_experts(cfg, splits, progress=not args.quiet)
    out = merge_and_report(cfg.merge, base, experts, splits, Path(args.out), cfg.eval_batch, not args.quiet)
    print(table(out.result.rows, out.result.expert_test))
    print(f"\nmerged checkpoint: {out.checkpoint}\nreport: {out.report}")
    return 0

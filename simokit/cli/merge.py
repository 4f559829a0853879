"""`simokit merge`: merge the experts, select, re-align, write the checkpoint and the report."""

from __future__ import annotations

import argparse
from pathlib import Path

from simokit.cli.groups import add_config_args, add_own_args, pipeline_config

HELP = "merge experts, select, re-align; write checkpoint and report"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """merge's flags: the recipe (also as a positional file), your own experts and frames, and --out."""
    p.add_argument("--out", default="simokit-merge", help="output directory (default: %(default)s)")
    add_own_args(p)
    add_config_args(p, file_argument=True)


def handle(args: argparse.Namespace) -> int:
    """Merge the experts (given, or the recipe's cached ones), select, re-align, report."""
    from simokit.pipeline.merging import check_merge_request, merge_and_report
    from simokit.pipeline.report import table
    from simokit.train.pipeline import ensure_experts, load_data

    cfg = pipeline_config(args)
    own = cfg.own
    check_merge_request(own.base, list(own.experts))
    if own.active:  # the user's frames: label-free report on the held-out ones
        from simokit.pipeline.agreement import agreement_table
        from simokit.pipeline.own_build import merge_own

        study, merged = merge_own(cfg, Path(args.out), progress=not args.quiet)
        print(agreement_table(study.result.rows, study.result.expert_test))
        print(f"\nmerged checkpoint: {merged.checkpoint}\nreport: {merged.report}")
        return 0
    splits = load_data(cfg, progress=not args.quiet, merge=True)
    if own.base:
        base, experts = Path(own.base), [Path(p) for p in own.experts]
    else:
        base, experts = ensure_experts(cfg, splits, progress=not args.quiet)
    out = merge_and_report(cfg.merge, base, experts, splits, Path(args.out), cfg.eval_batch, not args.quiet)
    print(table(out.result.rows, out.result.expert_test))
    print(f"\nmerged checkpoint: {out.checkpoint}\nreport: {out.report}")
    return 0

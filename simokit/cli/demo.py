"""`simokit demo`: the whole pipeline on the embedded benchmark."""

from __future__ import annotations

import argparse
from pathlib import Path

from simokit.cli.groups import add_config_args, pipeline_config

HELP = "run the pipeline on the embedded benchmark"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """demo's flags: the recipe and --out."""
    add_config_args(p)
    p.add_argument(
        "--out", default="simokit-demo", help="where report.md and figures go (default: %(default)s)"
    )


def handle(args: argparse.Namespace) -> int:
    """Run the demo pipeline and print its table."""
    from simokit.pipeline.demo import run_demo
    from simokit.profile.compare import table as profile_table

    result = run_demo(pipeline_config(args), Path(args.out), progress=not args.quiet)
    print(result.table)
    print(f"\n{profile_table(result.profile)}")
    print(f"\nreport:  {result.report}\nmerge:   {result.merge.report}\nmodel:   {result.merge.checkpoint}")
    print(f"bundle:  {result.bundle}  (try: simokit inspect {result.bundle})")
    print("wall time: " + ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items()))
    return 0

"""`simokit train`: pre-train the base encoder or fine-tune one expert (both cached)."""

from __future__ import annotations

import argparse

from simokit.cli.groups import add_config_args, pipeline_config
from simokit.errors import SimokitError

HELP = "pre-train the base encoder or fine-tune an expert (cached)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """train's flags: what to train, --task, and the recipe."""
    p.add_argument("what", choices=["base", "expert"])
    p.add_argument("--task", help="expert task: seg, depth, normal, edge or shading")
    add_config_args(p)


def handle(args: argparse.Namespace) -> int:
    """Train (or fetch from cache) the base encoder or one expert and print the checkpoint path."""
    from simokit.tasks import get_task
    from simokit.train.pipeline import ensure_base, ensure_expert, load_data

    cfg = pipeline_config(args)
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

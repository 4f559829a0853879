"""`simokit eval`: a checkpoint's metrics on the embedded validation scenes."""

from __future__ import annotations

import argparse
from pathlib import Path

from simokit.cli.groups import add_config_args, pipeline_config

HELP = "evaluate a checkpoint on the embedded validation scenes"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """eval's flags: the checkpoint and the recipe."""
    p.add_argument("checkpoint", help="simokit .safetensors checkpoint (expert or merged)")
    add_config_args(p)


def handle(args: argparse.Namespace) -> int:
    """Evaluate a checkpoint on the embedded validation scenes and print its metrics."""
    from simokit.tasks.evaluate import evaluate
    from simokit.train.pipeline import load_data, load_model

    cfg = pipeline_config(args)
    model = load_model(Path(args.checkpoint))
    splits = load_data(cfg, progress=not args.quiet)
    metrics = evaluate(model, splits.val, tuple(model.heads), cfg.eval_batch, progress=not args.quiet)
    for task, values in metrics.items():
        print(task + ": " + ", ".join(f"{k} {v:.4f}" for k, v in values.items()))
    return 0

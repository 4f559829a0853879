"""`simokit inspect`: what a bundle or ONNX file holds."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "show what a bundle or ONNX file holds"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """inspect's one argument: the path."""
    p.add_argument("path", help="bundle directory or .onnx file")


def handle(args: argparse.Namespace) -> int:
    """Print what a bundle holds: tasks, IO, sizes, provenance and verification errors."""
    from simokit.runtime.describe import describe

    print(describe(Path(args.path)))
    return 0

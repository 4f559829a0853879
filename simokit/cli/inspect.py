"""`simokit inspect`: what a bundle or ONNX file holds."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "show what a bundle or ONNX file holds"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """inspect's one argument: the path."""
    p.add_argument("path", help="bundle directory, Triton model directory or .onnx file")
    p.add_argument(
        "--verify", action="store_true", help="check every file's SHA-256 against meta.json (reads all bytes)"
    )


def handle(args: argparse.Namespace) -> int:
    """Print what a bundle holds: tasks, IO, sizes, provenance and verification errors."""
    from simokit.runtime.describe import describe
    from simokit.runtime.manifest import verify_folder

    path = Path(args.path)
    if args.verify:
        print(f"files: {verify_folder(path)} verified against meta.json (size and SHA-256)")
        if (path / "config.pbtxt").is_file():  # a Triton model directory: nothing more to describe
            return 0
    print(describe(path))
    return 0

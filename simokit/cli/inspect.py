"""`simokit inspect`: what a bundle, ONNX file, simokit checkpoint or foreign checkpoint holds."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "show what a bundle, ONNX file or checkpoint (any importable format) holds"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """inspect's one argument: the path."""
    p.add_argument(
        "path",
        help="bundle directory, Triton model directory, .onnx file, checkpoint file or Hugging Face folder",
    )
    p.add_argument("--format", dest="fmt", help="checkpoints: force a format instead of detecting it")
    p.add_argument(
        "--backbone",
        help="checkpoints: encoder file for a head-only file (default: the hub's file beside it)",
    )
    p.add_argument(
        "--verify", action="store_true", help="check every file's SHA-256 against meta.json (reads all bytes)"
    )


def handle(args: argparse.Namespace) -> int:
    """Print what a bundle holds: tasks, IO, sizes, provenance and verification errors."""
    from simokit.runtime.describe import describe
    from simokit.runtime.manifest import verify_folder

    path = Path(args.path)
    if is_checkpoint(path):
        return _inspect_checkpoint(path, args.fmt, args.backbone)
    if args.verify:
        print(f"files: {verify_folder(path)} verified against meta.json (size and SHA-256)")
        if (path / "config.pbtxt").is_file():  # a Triton model directory: nothing more to describe
            return 0
    print(describe(path))
    return 0


def is_checkpoint(path: Path) -> bool:
    """A checkpoint file or Hugging Face folder (as opposed to a bundle, Triton directory or .onnx)."""
    if path.is_dir():
        return (path / "config.json").is_file() and not (path / "meta.json").is_file()
    return path.suffix in (".pth", ".pt", ".bin", ".ckpt", ".safetensors")


def _inspect_checkpoint(path: Path, fmt: str | None, backbone: str | None) -> int:
    """Print a simokit checkpoint's metadata, or what the importer detects in a foreign checkpoint."""
    from simokit.models.checkpoint import is_simokit_checkpoint
    from simokit.models.importers.summary import describe_simokit_checkpoint, describe_source

    if is_simokit_checkpoint(path):
        print(describe_simokit_checkpoint(path))
    else:
        print(describe_source(path, fmt, backbone))
    return 0

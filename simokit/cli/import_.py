"""`simokit import`: convert an expert (or base) from another project's format to a simokit checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from simokit.errors import ConfigError

if TYPE_CHECKING:
    from simokit.models.importers import ImportedModel

HELP = "convert an expert or base from another format (SIMO, DINOv2, Depth Anything, HF, timm)"
TASK_CHOICES = ("seg", "depth", "normal", "relative_depth")


def parse_size(text: str) -> tuple[int, int]:
    """'H' or 'HxW' -> (H, W); anything else raises ConfigError."""
    parts = text.lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or min(values) <= 0:
        raise ConfigError(f"--size '{text}' is not H or HxW in pixels (e.g. 518 or 448x602)")
    return (values[0], values[-1])


def add_arguments(p: argparse.ArgumentParser) -> None:
    """import's arguments: the source, task, format, backbone, outputs and export size."""
    p.add_argument("src", help="checkpoint file (.pth/.pt/.bin/.safetensors) or Hugging Face folder")
    p.add_argument(
        "--task", choices=TASK_CHOICES, help="the head to take (or the task of a head the file does not name)"
    )
    p.add_argument(
        "--format", dest="fmt", help="force a format instead of detecting it (see simokit inspect SRC)"
    )
    p.add_argument("--backbone", help="encoder checkpoint, for head files that hold no encoder")
    p.add_argument("--out", required=True, help="simokit checkpoint to write (.safetensors)")
    p.add_argument(
        "--onnx", help="also write the single-expert ONNX graph (normalised float input, one output)"
    )
    p.add_argument("--size", help="ONNX input size H or HxW (fixed; default: the model's input size)")


def handle(args: argparse.Namespace) -> int:
    """Import, write the checkpoint (and the ONNX graph), print one summary line each."""
    from simokit.models.importers import import_model, save_imported

    size = parse_size(args.size) if args.size else None
    if size is not None and not args.onnx:
        raise ConfigError("--size sets the ONNX input size; give it with --onnx")
    model = import_model(args.src, task=args.task, fmt=args.fmt, backbone=args.backbone)
    if args.onnx and not model.is_expert:
        raise ConfigError(
            f"{args.src} is an encoder without a task head ({model.format}); --onnx needs an expert"
        )
    out = save_imported(model, Path(args.out))
    print(summary(model) + f" -> {out}")
    if args.onnx:
        from simokit.export.single_expert import export_single_expert

        done = export_single_expert(model, args.onnx, size)
        print(
            f"onnx: {done.path} input image (B, 3, {done.size[0]}, {done.size[1]}) float, normalised "
            f"(mean {model.mean}, std {model.std}); output {done.output} {done.output_shape}; "
            f"ORT vs torch {done.max_error:.1e}"
        )
    return 0


def summary(model: ImportedModel) -> str:
    """One line: format, task, head kind, classes and encoder variant of an imported model."""
    variant = model.details.get("variant", f"{model.vit.embed_dim}-wide")
    encoder = f"{variant}, {model.vit.depth} blocks, {model.vit.num_register_tokens} registers"
    if model.head is None:
        return f"{model.format}: base encoder ({encoder})"
    classes = f", {len(model.classes)} classes" if model.classes else ""
    return f"{model.format}: {model.task} expert, {model.head.kind} head{classes} (encoder {encoder})"

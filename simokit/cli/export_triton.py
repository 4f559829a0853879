"""`simokit export-triton`: the bundle written into a Triton model repository."""

from __future__ import annotations

import argparse
from pathlib import Path

from simokit.cli.groups import add_bundle, add_triton_model_args, from_args

HELP = "write the bundle into a Triton model repository"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """export-triton's flags: the repository, the backend and the Triton model group (2 instances)."""
    add_bundle(p)
    p.add_argument("--repo", required=True, help="model repository directory (created if missing)")
    p.add_argument("--backend", choices=["onnxruntime", "tensorrt"], default="onnxruntime")
    add_triton_model_args(p, instances=2)


def handle(args: argparse.Namespace) -> int:
    """Write the bundle into a Triton model repository: config.pbtxt, 1/model.onnx (or .plan), meta.json."""
    from simokit.export.triton import TritonOptions, export_triton
    from simokit.runtime.bundle import require_graph

    opts = from_args(TritonOptions, args)
    require_graph(args.bundle, "export-triton")
    out = export_triton(Path(args.bundle), Path(args.repo), opts)
    print(f"model: {out}  (start Triton with --model-repository {Path(args.repo).resolve()})")
    return 0

"""`simokit serve`: the bundle on Triton Inference Server (nvidia-pytriton) until Ctrl-C."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from simokit.cli.groups import add_bundle, add_threads, add_triton_model_args, from_args

if TYPE_CHECKING:
    from simokit.runtime.serve import Endpoints

HELP = "serve a bundle on Triton Inference Server (needs simokit[serve])"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """serve's flags: where to listen, batching, threads and the Triton model group (1 instance)."""
    add_bundle(p)
    p.add_argument("--port", type=int, default=8000, help="HTTP port; gRPC +1, metrics +2 (default: 8000)")
    p.add_argument("--host", default="0.0.0.0", help="address to listen on (default: all interfaces)")
    p.add_argument("--no-dynamic-batching", action="store_true", help="run each request on its own")
    add_threads(p)
    add_triton_model_args(p, instances=1)


def handle(args: argparse.Namespace) -> int:
    """Serve the bundle on Triton Inference Server (nvidia-pytriton) until Ctrl-C."""
    from simokit.runtime.serve import ServeOptions, serve

    opts = from_args(ServeOptions, args, dynamic_batching=not args.no_dynamic_batching)

    def ready(ends: Endpoints) -> None:
        print(f"serving {args.bundle}\n  {ends.http}  (HTTP)\n  {ends.grpc}  (gRPC)", flush=True)
        print(f"  metrics {ends.metrics}, log {ends.log}\nready; Ctrl-C stops", flush=True)

    serve(Path(args.bundle), opts, ready)
    print("stopped")
    return 0

"""A routed bundle: one verified engine per domain, the router's feature graph and bases, one meta.json.

Layout: `domains/<name>/` is a complete bundle per domain (model.onnx, meta.json, report.md);
`router.onnx` computes the router's features from the same input as the engines (the base
encoder's first blocks); `router.npz` holds the SVD bases. The top-level `model.onnx` is the first
domain's graph, so tools that know nothing of routing still open the bundle; meta.json's `routing`
section is what simokit.runtime.load uses to route. Published atomically like every bundle.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from simokit.cache import publish_dir
from simokit.export.bundle import write_bundle
from simokit.export.onnx import ExportSpec, InputAdapter, export_module
from simokit.merge.routing import RouterFeatures
from simokit.models import DinoVisionTransformer, MultiTaskModel
from simokit.runtime.bundle import META_FILE, MODEL_FILE, read_meta
from simokit.runtime.router import SubspaceRouter

ROUTER_GRAPH = "router.onnx"
ROUTER_BASES = "router.npz"
ROUTER_OUTPUT = "features"


def export_router(
    encoder: DinoVisionTransformer, router: SubspaceRouter, spec: ExportSpec, path: Path
) -> Path:
    """The router's feature extractor as ONNX, taking the engines' input layout."""
    module = nn.Sequential(InputAdapter(spec), RouterFeatures(encoder, router.block, router.mode))
    meta = {"simokit.router": f"block {router.block}, {router.mode}"}
    return export_module(module, encoder, spec, [ROUTER_OUTPUT], path, meta)


def write_routed_bundle(
    out: str | Path,
    engines: dict[str, MultiTaskModel],
    router: SubspaceRouter,
    base: DinoVisionTransformer,
    spec: ExportSpec,
    verify_images: dict[str, np.ndarray],
    extra: dict[str, Any],
    write_kwargs: dict[str, Any] | None = None,
) -> Path:
    """Export and verify every domain's engine, add the router, publish at `out`."""
    final = Path(out)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        for domain, model in engines.items():
            write_bundle(tmp / "domains" / domain, model, spec, verify_images[domain], **(write_kwargs or {}))
        first = tmp / "domains" / router.domains[0]
        try:  # the default graph is the first domain's: a hard link costs no disk space
            os.link(first / MODEL_FILE, tmp / MODEL_FILE)
        except OSError:
            shutil.copyfile(first / MODEL_FILE, tmp / MODEL_FILE)
        export_router(base, router, spec, tmp / ROUTER_GRAPH)
        router.save(tmp / ROUTER_BASES)
        meta = read_meta(first)
        routing = {
            "domains": list(router.domains),
            "engines": {d: f"domains/{d}" for d in router.domains},
            "router": {
                "graph": ROUTER_GRAPH,
                "bases": ROUTER_BASES,
                "block": router.block,
                "mode": router.mode,
            },
            **extra,
        }
        meta.extra["routing"] = routing
        (tmp / META_FILE).write_text(meta.to_json())
        publish_dir(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return final

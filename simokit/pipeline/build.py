"""`simokit build`: experts in, one verified bundle out (merge -> re-align -> export -> verify -> publish).

The merge study is the cached one from `simokit merge`, so a build after a merge (or a demo) only
exports and verifies.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from simokit.config import to_dict
from simokit.data import CLASS_NAMES, PALETTE
from simokit.errors import SimokitError
from simokit.export.bundle import write_bundle
from simokit.export.onnx import ExportSpec, export_onnx
from simokit.models.checkpoint import model_from_checkpoint
from simokit.models.importers import load_any
from simokit.pipeline.domains import DomainResult
from simokit.pipeline.merging import MergeOutputs, file_sha256, merge_and_report
from simokit.pipeline.study import Row, row_summary
from simokit.profile.flops import vit_flops
from simokit.recipe import PipelineConfig
from simokit.runtime.bundle import read_meta
from simokit.tasks import get_task
from simokit.train.pipeline import Splits, ensure_experts, load_data


def check_build_request(cfg: PipelineConfig, backend: str, fp16: bool, dynamic_size: bool) -> None:
    """Refuse a build whose result could not be used, before the long work rather than after it."""
    if backend == "tensorrt":
        from simokit.runtime.capabilities import require

        require("tensorrt")
        if dynamic_size:
            raise SimokitError("--dynamic-size needs size ranges: use simokit build-engine --height/--width")
    if cfg.routing.domains and cfg.routing.delta != "none" and (fp16 or backend == "tensorrt"):
        raise SimokitError(
            f"routing.delta={cfg.routing.delta} stores FP32 weight deltas that only ONNX Runtime opens; "
            "drop --fp16 / --backend tensorrt, or build with --set routing.delta=none"
        )


def build_merged_bundle(
    cfg: PipelineConfig, out: Path, spec: ExportSpec, verify_images: int = 8, progress: bool = True
) -> tuple[Path, Row]:
    """The recipe's experts (cached) -> the merge study (cached) -> a verified bundle at `out`."""
    splits = load_data(cfg, progress=progress, merge=True)
    base, experts = ensure_experts(cfg, splits, progress=progress)
    with tempfile.TemporaryDirectory() as work:
        merged = merge_and_report(cfg.merge, base, experts, splits, Path(work), cfg.eval_batch, progress)
        return build_bundle(out, merged, base, experts, splits, spec, verify_images)


def build_bundle(
    out: Path,
    merged: MergeOutputs,
    base: Path,
    experts: list[Path],
    splits: Splits,
    spec: ExportSpec,
    verify_images: int = 8,
    classes: tuple[str, ...] = CLASS_NAMES,
    palette: np.ndarray = PALETTE,
    more: dict[str, Any] | None = None,
) -> tuple[Path, Row]:
    """Export the study's selected model and each expert, verify, and publish the bundle at `out`.

    `more` adds entries to the bundle's metadata (where the frames came from, label-free scores)."""
    row, model = merged.result.selected_row, merged.result.selected
    if model is None or row is None or splits.test is None:
        raise SimokitError("the merge study selected no model")
    with tempfile.TemporaryDirectory() as work:
        files = {p.name: p for p in [merged.report, *merged.plots, merged.checkpoint]}
        files.update(export_experts(experts, spec, Path(work)))
        extra = {
            "merge": row_summary(row),
            "fit_stats": merged.result.fit_stats.get(row.name, {}),
            "sources": {p.name: file_sha256(p) for p in [base, *experts]},
            "flops_per_image": vit_flops(
                model.encoder.config.to_dict(),
                spec.height,
                spec.width,
                [get_task(t).out_channels for t in spec.tasks],
            ),
            **(more or {}),
        }
        images = np.asarray(splits.test.image[:verify_images])
        path = write_bundle(
            out, model, spec, images, classes=classes, palette=palette, extra=extra, files=files
        )
    return path, row


def export_experts(paths: list[Path], spec: ExportSpec, work: Path) -> dict[str, Path]:
    """Each expert alone with the bundle's pre/post-processing, for `simokit profile BUNDLE`."""
    files = {}
    for path in paths:
        model = model_from_checkpoint(load_any(path))
        task = next(iter(model.heads))
        files[f"experts/{task}.onnx"] = export_onnx(
            model, replace(spec, tasks=(task,)), work / f"expert-{task}.onnx"
        )
    return files


def build_routed_bundle(
    cfg: PipelineConfig, out: Path, spec: ExportSpec, verify_images: int = 8, progress: bool = True
) -> tuple[Path, DomainResult]:
    """Per-domain experts -> one engine per domain + SiM router -> a verified routed bundle at `out`."""
    from simokit.pipeline.domains import domain_report, run_domains
    from simokit.routing.bundle import write_routed_bundle

    res = run_domains(cfg, progress)
    images = {
        d: np.asarray(s.test.image[:verify_images]) for d, s in res.splits.items() if s.test is not None
    }
    report = domain_report(res, cfg)
    extra = {
        "scores": res.scores,
        "routing_accuracy": res.routing_accuracy,
        "blocks": [vars(b) for b in res.blocks],
        "recipe": to_dict(cfg.routing),
        "margin": cfg.routing.margin,
    }
    path = write_routed_bundle(
        out,
        res.engines,
        res.router,
        res.base,
        spec,
        images,
        extra,
        {"classes": CLASS_NAMES, "palette": PALETTE},
        deltas=cfg.routing.delta != "none",
        rank_hint=cfg.routing.delta_rank if cfg.routing.delta == "lowrank" else None,
    )
    storage = read_meta(path).extra["routing"]["storage"]
    (path / "routing_report.md").write_text(report + storage_report(storage))
    return path, res


def storage_report(storage: dict[str, Any]) -> str:
    """Markdown lines: the written bundle's bytes on disk against full engines per domain."""
    mib = 2**20
    lines = [
        "",
        "## This bundle on disk",
        "",
        f"{storage['bundle_bytes'] / mib:.2f} MiB in all (router included); the domains' full graphs "
        f"alone would take {storage['full_engine_bytes'] / mib:.2f} MiB.",
    ]
    if "base_bytes" in storage:
        parts = ", ".join(
            f"{d} {v['delta_bytes'] / mib:.2f} MiB ({_counts(v['encodings'])})"
            for d, v in storage["domains"].items()
        )
        lines[-1] += (
            f" Stored as one base graph ({storage['base_bytes'] / mib:.2f} MiB) plus per-domain deltas: "
            f"{parts} (tensors per encoding)."
        )
    return "\n".join(lines) + "\n"


def _counts(encodings: dict[str, int]) -> str:
    return ", ".join(f"{n} {kind}" for kind, n in encodings.items())

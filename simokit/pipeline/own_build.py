"""`simokit merge` / `simokit build` on your own experts and frames: the checkpoint, the report, the bundle.

The report (report.md) holds the label-free table (agreement with each expert on the held-out frames,
normalised so 1.0 = expert and 0 = zero-shot) for every method x re-alignment row, what each selection
criterion picked, where the frames came from and the side-by-side picture.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from simokit.cache import atomic_path
from simokit.data import CLASS_NAMES, PALETTE
from simokit.export.onnx import ExportSpec
from simokit.merge.select import pick
from simokit.pipeline.agreement import agreement_table, mean_agreement, predict
from simokit.pipeline.build import build_bundle
from simokit.pipeline.merging import MergeOutputs, write_checkpoint
from simokit.pipeline.own_frames import RESIZE_RULE
from simokit.pipeline.own_picture import side_by_side
from simokit.pipeline.own_study import OwnStudy, own_study
from simokit.pipeline.report import format_hparams, table
from simokit.pipeline.study import row_summary
from simokit.pipeline.study_result import Row, result_to_json
from simokit.recipe import PipelineConfig
from simokit.train.pipeline import Splits

PICTURE = "side_by_side.png"
PICTURE_FRAMES = 4


def classes_and_palette(study: OwnStudy) -> tuple[tuple[str, ...], np.ndarray]:
    """The seg expert's class names (else the benchmark's) and a palette with one colour per class."""
    classes = next((ck.meta.classes for ck in study.checkpoints[1:] if ck.meta.classes), CLASS_NAMES)
    if len(classes) <= len(PALETTE):
        return tuple(classes), np.asarray(PALETTE[: len(classes)])
    rng = np.random.default_rng(0)  # more classes than the benchmark's palette: fixed random colours
    return tuple(classes), rng.integers(0, 256, (len(classes), 3)).astype(np.uint8)


def agreement_rows(study: OwnStudy) -> dict[str, float]:
    """Mean normalised agreement of every row, by row name."""
    res = study.result
    zeroshot = next(r.metrics for r in res.rows if r.method == "zeroshot")
    return {r.name: mean_agreement(r.metrics, zeroshot, res.expert_test) for r in res.rows}


def _selection_lines(study: OwnStudy) -> list[str]:
    res, lines = study.result, []
    for method in sorted({c.method for c in res.candidates}):
        cs = [c for c in res.candidates if c.method == method]
        criteria = ["tap", "tap_aligned"] + (["eval"] if study.val is not None else [])
        picks = ", ".join(f"{by} picks {format_hparams(pick(cs, by).hparams)}" for by in criteria)
        lines.append(f"- `{method}` ({len(cs)} candidates): {picks}")
    return lines


def _labelled_lines(study: OwnStudy) -> list[str]:
    if study.labelled is None:
        return []
    rows, experts = study.labelled
    return [
        "## Labelled test split of --val",
        "",
        "The same rows on the labelled test split; normalised score = each metric relative to its expert.",
        "",
        table(rows, experts),
        "",
    ]


def write_report(study: OwnStudy, cfg: PipelineConfig, out: Path) -> Path:
    """report.md: frames, the label-free table, the selections and the picture."""
    res, frames = study.result, study.frames
    sel: Row | None = res.selected_row
    h, w = study.size
    text = "\n".join(
        [
            "# Merge report: your experts on your frames",
            "",
            f"Frames: {frames.description}; source frames {frames.frame_size[0]}x{frames.frame_size[1]}, "
            f"{RESIZE_RULE} to the model input {h}x{w}. Even-numbered samples ({len(frames.fit)}) fit TAP "
            f"and re-alignment; odd-numbered ones ({len(frames.held)}) are held out for this table.",
            "",
            "## Agreement with the experts on the held-out frames (no labels)",
            "",
            "Each expert's own output is the reference for its task: seg pix_acc = % of pixels with the "
            "expert's label, miou = mIoU against the expert's labels, depth abs_rel = mean relative "
            "difference, normal mean_angle = mean angle (degrees). norm. = (m - zero-shot) / "
            "(expert - zero-shot): 1.0 = the expert, 0 = the zero-shot model (base encoder, expert heads).",
            "",
            agreement_table(res.rows, res.expert_test),
            "",
            *_labelled_lines(study),
            "## Selection",
            "",
            *_selection_lines(study),
            f"- deployed: {sel.name} (selected by `{cfg.merge.select}`, first re-alignment listed)"
            if sel
            else "",
            "",
            "## At a glance",
            "",
            "Held-out frames; per task the expert's output, then the merged model's.",
            "",
            f"![side by side]({PICTURE})",
            "",
        ]
    )
    path = out / "report.md"
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


def merge_own(cfg: PipelineConfig, out: Path, progress: bool = True) -> tuple[OwnStudy, MergeOutputs]:
    """Run the study on the user's material; write merged.safetensors, report.md, the picture and JSON."""
    study = own_study(cfg, progress)
    res = study.result
    if res.selected is None:
        raise RuntimeError("the study selected no model")
    out.mkdir(parents=True, exist_ok=True)
    held = study.frames.held.image[:PICTURE_FRAMES]
    experts = {t: np.asarray(getattr(study.agreement, t)[:PICTURE_FRAMES]) for t in study.inputs.tasks}
    merged = predict(res.selected, held, device=cfg.merge.device)
    picture = side_by_side(held, experts, merged, classes_and_palette(study)[1], out / PICTURE)
    base_meta = replace(study.checkpoints[0].meta, input_size=study.size)
    ckpt = write_checkpoint(res, cfg.merge, base_meta, [str(p) for p in study.experts], out)
    report = write_report(study, cfg, out)
    with atomic_path(out / "merge_results.json") as tmp:
        data = {**result_to_json(res), "agreement": agreement_rows(study), "frames": study.frames.summary()}
        tmp.write_text(json.dumps(data, indent=1))
    return study, MergeOutputs(ckpt, report, [picture], res)


def build_own_bundle(
    cfg: PipelineConfig, out: Path, spec: ExportSpec, verify_images: int = 8, progress: bool = True
) -> tuple[Path, Row, float]:
    """Your experts and frames -> the study (cached) -> a verified bundle at `out`, and its agreement."""
    with tempfile.TemporaryDirectory() as work:
        study, merged = merge_own(cfg, Path(work), progress)
        splits = Splits(train=study.frames.fit, val=study.frames.fit, test=study.frames.held)
        classes, palette = classes_and_palette(study)
        scores = agreement_rows(study)
        sel = merged.result.selected_row
        # the study's test score is against pseudo-targets: the bundle records the agreement instead
        summary = {k: v for k, v in row_summary(sel).items() if k != "test_score"} if sel else {}
        summary["agreement"] = scores[sel.name] if sel else float("nan")
        extra = {"frames": study.frames.summary(), "agreement": scores, "merge": summary}
        path, row = build_bundle(
            out, merged, study.base, study.experts, splits, spec, verify_images, classes, palette, extra
        )
    return path, row, scores[row.name]

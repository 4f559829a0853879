"""From checkpoints to a merged, re-aligned checkpoint and a report: what `simokit merge` runs."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np

from simokit.cache import atomic_path, cache_root, config_key
from simokit.config import to_dict
from simokit.errors import SimokitError
from simokit.merge.inputs import load_inputs
from simokit.merge.learned.coefficients import AdaMergingParams
from simokit.merge.select import pick
from simokit.models.checkpoint import CheckpointMeta, save_checkpoint, state_hash
from simokit.models.heads import DenseHead
from simokit.pipeline.report import format_hparams, plot_alpha, plot_learned, plot_tap, spearman, table
from simokit.pipeline.study import rebuild_selected, row_summary, run_study
from simokit.pipeline.study_result import StudyResult, result_from_json, result_to_json
from simokit.recipe import MergeConfig
from simokit.train.pipeline import Splits


@dataclass
class MergeOutputs:
    """Where the merge wrote its files, and the study behind them."""

    checkpoint: Path
    report: Path
    plots: list[Path]
    result: StudyResult


def check_merge_request(base: str | None, experts: list[str] | None) -> None:
    """Given checkpoints come as a base and its experts together; neither means the recipe's."""
    if bool(base) != bool(experts):
        raise SimokitError("give both --base and --experts, or neither (then the recipe's experts are used)")


def merge_and_report(
    cfg: MergeConfig,
    base_path: Path,
    expert_paths: list[Path],
    splits: Splits,
    out: Path,
    eval_batch: int = 64,
    progress: bool = True,
) -> MergeOutputs:
    """Run the study, write `merged.safetensors`, `merge_report.md`, plots and `merge_results.json`."""
    inputs, checkpoints = load_inputs(base_path, list(expert_paths))
    if splits.calib is None or splits.test is None:
        raise ValueError("merge needs the calib and test splits; load them with load_data(..., merge=True)")
    cache = (
        cache_root() / "merge" / _study_key(cfg, base_path, expert_paths, splits, eval_batch) / "study.json"
    )
    if cache.is_file():
        result = result_from_json(json.loads(cache.read_text()))
        rebuild_selected(inputs, result, cfg, splits.calib)
    else:
        result = run_study(inputs, cfg, splits.val, splits.calib, splits.test, eval_batch, progress)
        with atomic_path(cache) as tmp:
            tmp.write_text(json.dumps(result_to_json(result)))
    out.mkdir(parents=True, exist_ok=True)
    plots = [plot_alpha(result, out / "merge_alpha.png"), plot_tap(result, out / "merge_tap.png")]
    learned_plot = plot_learned(result, out / "merge_adamerging.png")
    plots += [learned_plot] if learned_plot else []
    ckpt = write_checkpoint(result, cfg, checkpoints[0].meta, [str(p) for p in expert_paths], out)
    report = _write_report(result, cfg, out, [p.name for p in plots])
    with atomic_path(out / "merge_results.json") as tmp:
        tmp.write_text(json.dumps(result_to_json(result), indent=1))
    return MergeOutputs(ckpt, report, plots, result)


def _before_after(stats: dict[str, float]) -> str:
    """'a -> b' for least-squares residuals or fine-tuning losses."""
    if "residual_before" in stats:
        return f"residual {stats['residual_before']:.3f} -> {stats['residual_after']:.3f}"
    return f"loss {stats['loss_first']:.3f} -> {stats['loss_last']:.3f}"


_STUDY_FORMAT = 3  # bump when run_study computes something new, so cached studies are redone


def _study_key(cfg: MergeConfig, base: Path, experts: list[Path], splits: Splits, eval_batch: int) -> str:
    # Content hashes, not paths: the same checkpoints and images give the same study wherever they live.
    files = [file_sha256(p) for p in [base, *experts]]
    images = hashlib.sha256()
    for arr in (splits.val, splits.calib, splits.test):
        if arr is not None:
            images.update(np.ascontiguousarray(arr.image).tobytes())
    return config_key(
        {
            "merge": to_dict(cfg),
            "files": files,
            "images": images.hexdigest(),
            "batch": eval_batch,
            "format": _STUDY_FORMAT,
            # defaults a grid entry does not name still decide what AdaMerging learns (a cached
            # study once outlived a change of ema_floor and reported the old, collapsed run)
            "adamerging_defaults": dataclasses.asdict(AdaMergingParams()),
        }
    )


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes (read in 1 MiB chunks), or of a folder's files with their names."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            h.update(str(file.relative_to(path)).encode() + b"\0")
        with open(file, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def write_checkpoint(
    result: StudyResult, cfg: MergeConfig, base_meta: CheckpointMeta, experts: list[str], out: Path
) -> Path:
    """The study's selected model as `out/merged.safetensors`, with how it was made in its metadata."""
    model, row = result.selected, result.selected_row
    if model is None or row is None:
        raise RuntimeError("the study selected no model")
    heads = {t: h.state_dict() for t, h in model.heads.items()}
    encoder = model.encoder.state_dict()
    meta = CheckpointMeta(
        kind="merged",
        encoder=base_meta.encoder,
        heads={t: cast(DenseHead, h).cfg.to_dict() for t, h in model.heads.items()},
        classes=base_meta.classes,
        input_size=base_meta.input_size,
        mean=base_meta.mean,
        std=base_meta.std,
        base_hash=base_meta.base_hash or state_hash(encoder),
        extra={
            "merge": {**row_summary(row), "recipe": to_dict(cfg)},
            "fit_stats": result.fit_stats.get(row.name, {}),
            "experts": experts,
        },
    )
    return save_checkpoint(out / "merged.safetensors", meta, encoder, heads)


def _selection_lines(result: StudyResult) -> list[str]:
    lines = []
    for method in sorted({c.method for c in result.candidates}):
        cs = [c for c in result.candidates if c.method == method]
        by_eval = pick(cs, "eval")
        lines.append(
            f"- `{method}`: eval picks {format_hparams(by_eval.hparams)} (val {by_eval.val_score:.3f}, "
            f"re-aligned {by_eval.val_score_realigned:.3f})"
        )
        for proxy in ("tap", "tap_aligned"):
            chosen = pick(cs, proxy)
            rho = spearman([-getattr(c, proxy) for c in cs], [c.val_score for c in cs])
            rho_r = spearman([-getattr(c, proxy) for c in cs], [c.val_score_realigned for c in cs])
            gap = chosen.val_score - by_eval.val_score
            gap_r = chosen.val_score_realigned - by_eval.val_score_realigned
            lines.append(
                f"  - {proxy} picks {format_hparams(chosen.hparams)}: val {chosen.val_score:.3f} "
                f"({gap:+.3f} vs the eval pick), re-aligned {chosen.val_score_realigned:.3f} ({gap_r:+.3f}); "
                f"Spearman(-{proxy}, val) "
                f"= {rho:.2f}, (-{proxy}, re-aligned val) = {rho_r:.2f}, {len(cs)} candidates"
            )
    return lines


def _learned_lines(result: StudyResult) -> list[str]:
    if not result.learned:
        return []
    lines = ["## AdaMerging with the TAP loss", ""]
    for name, run in result.learned.items():
        before, after = run.get("tap_before", {}), run.get("tap_after", {})
        tap = ", ".join(f"{t} {before[t]:.3f} -> {after.get(t, float('nan')):.3f}" for t in before)
        lines.append(
            f"- {name}: cosine TAP relative to zero-shot {tap}; {len(run.get('losses', []))} iterations in "
            f"{run.get('seconds', 0.0):.1f} s, task vectors {run.get('task_vector_mb', 0.0):.0f} MiB, "
            f"process peak RSS {run.get('peak_rss_mb', 0.0):.0f} MiB"
            + (f", GPU peak {run['peak_gpu_mb']:.0f} MiB" if run.get("peak_gpu_mb") else "")
        )
    return [*lines, ""]


def _write_report(result: StudyResult, cfg: MergeConfig, out: Path, plots: list[str]) -> Path:
    s = result.seconds
    n = max(len(result.candidates), 1)
    tap_cost = s.get("tap_select", 0.0) + s.get("tap_reference", 0.0)
    sel = result.selected_row
    text = "\n".join(
        [
            "# Merge report",
            "",
            "Test-split metrics; normalised score = each metric relative to its expert (1.0 = expert).",
            "",
            table(result.rows, result.expert_test),
            "",
            "## Hyper-parameter selection",
            "",
            *_selection_lines(result),
            f"- cost over {n} candidates: eval {s.get('eval_select', 0.0):.1f} s "
            f"({s.get('eval_select', 0.0) / n:.2f} s each, labelled val split), "
            f"TAP {tap_cost:.1f} s ({s.get('tap_select', 0.0) / n:.2f} s each "
            f"+ {s.get('tap_reference', 0.0):.1f} s once for expert features, "
            f"{cfg.tap_images} unlabelled images), aligned TAP {s.get('tap_aligned_select', 0.0):.1f} s "
            f"({s.get('tap_aligned_select', 0.0) / n:.2f} s each, {cfg.realign_images} unlabelled images)",
            "",
            *_learned_lines(result),
            "## Re-alignment",
            "",
            f"Least-squares maps fitted on {cfg.realign_images} unlabelled calibration images "
            f"(ridge {cfg.ridge}), folded into each head's first linear layer. "
            "Relative feature residual before -> after the map (fine-tuning: task loss first -> last steps):",
            "",
            *[
                f"- {name}: " + ", ".join(f"{t} {_before_after(v)}" for t, v in stats.items())
                for name, stats in result.fit_stats.items()
            ],
            *[
                f"- fit time ({k[len('realign_') :]}): {v:.1f} s in total"
                for k, v in s.items()
                if k.startswith("realign_")
            ],
            "",
            f"Written checkpoint: `merged.safetensors` = {sel.name if sel else '-'} (test score "
            f"{sel.score:.3f})."
            if sel
            else "",
            "",
            *[f"![{p}]({p})" for p in plots],
            "",
        ]
    )
    path = out / "merge_report.md"
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path

"""A merge study: grid-search each method, select by eval and by TAP, re-align, report on test.

This is what `simokit merge` and the demo run. Every candidate of every method's grid is merged,
scored by TAP on unlabelled calibration images and by normalised score on the labelled validation
split (with and without head re-alignment, for the plots); the picks are then evaluated on the
held-out test split without re-alignment and with each re-alignment variant. Learned merges
(`simokit.merge.learned`) learn their numbers first, after every grid method was scored.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm import tqdm

from simokit.data import SceneArrays
from simokit.device import resolve_device
from simokit.merge.api import merge_state_dicts
from simokit.merge.features import Collector, collect, head_parts, image_batches
from simokit.merge.inputs import Inputs
from simokit.merge.learned.base import LearnContext, LearnedMerge
from simokit.merge.registry import get_method
from simokit.merge.select import SELECT_CRITERIA, Candidate, TapReference, pick, tap_reference, tap_score
from simokit.models import DinoVisionTransformer, MultiTaskModel
from simokit.models.heads import DenseHead
from simokit.pipeline.study_result import Row, StudyResult
from simokit.realign.base import ExpertTargets, RealignResult, RealignSettings, realigned_model
from simokit.realign.registry import get_realigner
from simokit.recipe import MergeConfig, RealignMode
from simokit.tasks.evaluate import evaluate
from simokit.tasks.score import Metrics, normalized_score


def row_summary(row: Row) -> dict[str, Any]:
    """How a row's model was made and how it scored, for checkpoint and bundle metadata."""
    return {
        "method": row.method,
        "hparams": row.hparams,
        "selected_by": row.selected_by,
        "realign": row.realign,
        "test_score": row.score,
        "test_metrics": row.metrics,
    }


@contextmanager
def _timed(seconds: dict[str, float], key: str) -> Iterator[None]:
    """Add the block's wall time to `seconds[key]`."""
    t0 = time.perf_counter()
    yield
    seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - t0


@dataclass
class _Study:
    """The context every step of a study shares, so steps take what they vary over, not ten arguments."""

    inputs: Inputs
    cfg: MergeConfig
    val: SceneArrays | None  # None: no labels, no selection by eval
    calib: SceneArrays
    test: SceneArrays
    eval_batch: int
    res: StudyResult = field(default_factory=StudyResult)
    feats: dict[str, Any] = field(default_factory=dict)  # expert features on the re-alignment images
    tap_ref: TapReference | None = None

    def evaluate(self, model: MultiTaskModel, data: SceneArrays) -> Metrics:
        """Metrics of every task of `model` on `data`."""
        inputs = self.inputs
        return evaluate(
            model, data, inputs.tasks, self.eval_batch, num_classes=inputs.num_classes, device=self.cfg.device
        )

    def merge(self, method: str, hp: dict[str, Any]) -> DinoVisionTransformer:
        """The merged encoder for one grid point."""
        states = list(self.inputs.expert_states.values())
        return self.inputs.make_encoder(merge_state_dicts(self.inputs.base_state, states, method, **hp))

    def learn(self, method: type[LearnedMerge[Any]], hp: dict[str, Any], progress: bool) -> dict[str, Any]:
        """Learn what grid entry `hp` of a learned method leaves open; returns the completed entry."""
        if self.tap_ref is None:
            raise RuntimeError("the TAP reference must be computed before learning merges")
        cfg, inputs = self.cfg, self.inputs
        images = torch.cat(list(image_batches(self.calib, cfg.tap_images, cfg.batch)))
        with _timed(self.res.seconds, method.seconds_key):
            ctx = LearnContext(
                inputs.make_encoder(inputs.base_state),
                inputs.base_state,
                inputs.expert_states,
                self.tap_ref.parts,
                images,
                earlier=list(self.res.candidates),
                select=cfg.select,
                device=cfg.device,
                progress=progress,
            )
            learned = method.learn(hp, ctx)
        self.res.learned[learned.label] = learned.report
        return learned.hparams

    def realign(self, merged: DinoVisionTransformer, mode: str) -> RealignResult:
        """Re-align `merged` to the heads with the re-aligner registered as `mode`, on the calib images."""
        fit = get_realigner(mode)
        experts = ExpertTargets(features=self.feats)
        return fit(merged, self.inputs.heads, self.calib, RealignSettings.of(self.cfg), experts)

    def score(self, method: str, hp: dict[str, Any]) -> Candidate:
        """TAP, aligned TAP and validation scores (plain and head re-aligned) of one grid point."""
        if self.tap_ref is None:
            raise RuntimeError("the TAP reference must be computed before scoring candidates")
        merged, cand, res = self.merge(method, hp), Candidate(method, hp), self.res
        with _timed(res.seconds, "tap_select"):
            cand.tap = tap_score(merged, self.tap_ref)["mean"]
        if self.val is not None:
            with _timed(res.seconds, "eval_select"):
                plain = MultiTaskModel(merged, dict(self.inputs.heads)).eval()
                cand.val_score = normalized_score(self.evaluate(plain, self.val), res.expert_val)
        with _timed(res.seconds, "tap_aligned_select"):
            fitted = self.realign(merged, RealignMode.HEAD)
            cand.tap_aligned = sum(v["residual_after"] for v in fitted.stats.values()) / len(fitted.stats)
        if self.val is not None:
            realigned = realigned_model(merged, fitted)
            cand.val_score_realigned = normalized_score(self.evaluate(realigned, self.val), res.expert_val)
        return cand

    def row(self, name: str, cand: Candidate | None, by: str, realign: str, metrics: Metrics) -> Row:
        """A table row scored against the experts' test metrics."""
        method, hp = (cand.method, cand.hparams) if cand else ("zeroshot", {})
        return Row(name, method, hp, by, realign, metrics, normalized_score(metrics, self.res.expert_test))

    def final_rows(self, cand: Candidate, by: str, memo: dict[int, Evaluated]) -> None:
        """Test rows of the pick `cand` of criterion `by`; marks the deployable selection."""
        if id(cand) not in memo:  # two criteria often pick the same candidate: evaluate it once
            memo[id(cand)] = self.evaluate_pick(cand)
        name = f"{cand.method} ({by})"
        for mode, (metrics, stats, model) in memo[id(cand)].items():
            row = self.row(name if mode == "none" else f"{name} + {mode} re-align", cand, by, mode, metrics)
            self.res.rows.append(row)
            if mode == "none":
                continue
            self.res.fit_stats[row.name] = stats
            cfg = self.cfg
            if by == cfg.select and mode == cfg.realign[0] and cand is pick(self.res.candidates, cfg.select):
                # Across methods too the choice uses the selection criterion, never the test split.
                self.res.selected, self.res.selected_row = model, row

    def evaluate_pick(self, cand: Candidate) -> Evaluated:
        """Test metrics of one pick without re-alignment and with each re-alignment variant."""
        merged = self.merge(cand.method, cand.hparams)
        plain = MultiTaskModel(merged, dict(self.inputs.heads)).eval()
        out: Evaluated = {"none": (self.evaluate(plain, self.test), {}, plain)}
        for mode in self.cfg.realign:
            with _timed(self.res.seconds, f"realign_{mode}"):
                fitted = self.realign(merged, mode)
            model = realigned_model(merged, fitted)
            out[mode] = (self.evaluate(model, self.test), fitted.stats, model)
        return out


Evaluated = dict[str, tuple[Metrics, dict[str, dict[str, float]], MultiTaskModel]]


def run_study(
    inputs: Inputs,
    cfg: MergeConfig,
    val: SceneArrays | None,
    calib: SceneArrays,
    test: SceneArrays,
    eval_batch: int = 64,
    progress: bool = True,
    fixed: Collector = collect,
) -> StudyResult:
    """Grid-search every method in `cfg`, select, re-align and evaluate the picks on `test`.

    Without `val` (no labels) selection by eval is skipped; `fixed` collects the base's and the experts'
    features (a disk cache keeps them across studies)."""
    methods = {m: get_method(m) for m in cfg.methods}  # unknown names fail before any work
    resolve_device(cfg.device)  # a GPU asked for and absent: say so now, not after the grid
    study = _Study(inputs, cfg, val, calib, test, eval_batch)
    res = study.res
    base = inputs.make_encoder(inputs.base_state)
    experts = {t: inputs.make_encoder(sd) for t, sd in inputs.expert_states.items()}
    if val is not None:
        res.expert_val = _expert_metrics(experts, inputs, val, eval_batch, cfg.device)
    res.expert_test = _expert_metrics(experts, inputs, test, eval_batch, cfg.device)
    parts = {t: head_parts(h, base.depth) for t, h in inputs.heads.items()}
    with _timed(res.seconds, "tap_reference"):
        tap_batches = list(image_batches(calib, cfg.tap_images, cfg.batch))
        study.tap_ref = tap_reference(base, experts, parts, tap_batches, cfg.tap_metric, cfg.device, fixed)
    study.feats = _expert_features(experts, inputs.heads, cfg, calib, fixed)
    grid = [(m, hp) for m in cfg.methods for hp in _grid(cfg, m)]
    # learned merges go last (a stable sort): they may start from what the grid methods selected
    grid.sort(key=lambda entry: issubclass(methods[entry[0]], LearnedMerge))
    for method, hp in tqdm(grid, desc="merge grid", disable=not progress, leave=False):
        cls = methods[method]
        if issubclass(cls, LearnedMerge):
            hp = study.learn(cls, hp, progress)
        res.candidates.append(study.score(method, hp))
    zeroshot = MultiTaskModel(base, dict(inputs.heads)).eval()
    res.rows.append(study.row("zeroshot", None, "-", "none", study.evaluate(zeroshot, test)))
    memo: dict[int, Evaluated] = {}
    for method in cfg.methods:
        mine = [c for c in res.candidates if c.method == method]
        for by in [b for b in SELECT_CRITERIA if val is not None or b != "eval"]:
            study.final_rows(pick(mine, by), by, memo)
    return res


def _grid(cfg: MergeConfig, method: str) -> list[dict[str, Any]]:
    if cfg.grids.get(method):
        return list(cfg.grids[method])
    return get_method(method).grid()


def _expert_metrics(
    experts: dict[str, DinoVisionTransformer], inputs: Inputs, data: SceneArrays, batch: int, device: str
) -> Metrics:
    out: Metrics = {}
    for task, enc in experts.items():
        model = MultiTaskModel(enc, {task: inputs.heads[task]}).eval()
        out.update(evaluate(model, data, (task,), batch, num_classes=inputs.num_classes, device=device))
    return out


def rebuild_selected(
    inputs: Inputs, res: StudyResult, cfg: MergeConfig, calib: SceneArrays, fixed: Collector = collect
) -> None:
    """Re-create the selected deployable model (one merge and one fit) for a cached study."""
    row = res.selected_row
    if row is None:
        raise RuntimeError("cached merge study has no selected model")
    study = _Study(inputs, cfg, calib, calib, calib, eval_batch=1, res=res)
    encoders = {t: inputs.make_encoder(sd) for t, sd in inputs.expert_states.items()}
    study.feats = _expert_features(encoders, inputs.heads, cfg, calib, fixed)
    merged = study.merge(row.method, row.hparams)
    res.selected = realigned_model(merged, study.realign(merged, row.realign))


def _expert_features(
    experts: dict[str, DinoVisionTransformer],
    heads: dict[str, DenseHead],
    cfg: MergeConfig,
    calib: SceneArrays,
    fixed: Collector = collect,
) -> dict[str, Any]:
    """Each expert's features on the re-alignment images, for the blocks its head reads."""
    depth = next(iter(experts.values())).depth
    batches = list(image_batches(calib, cfg.realign_images, cfg.batch))
    return {
        t: fixed(experts[t], batches, sorted({b for b, _ in head_parts(heads[t], depth)}), cfg.device)
        for t in heads
    }

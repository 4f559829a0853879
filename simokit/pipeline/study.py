"""A merge study: grid-search each method, select by eval and by TAP, re-align, report on test.

This is what `simokit merge` and the demo run. Every candidate of every method's grid is merged,
scored by TAP on unlabelled calibration images and by normalised score on the labelled validation
split (with and without head re-alignment, for the plots); the picks are then evaluated on the
held-out test split without re-alignment and with each re-alignment variant.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm import tqdm

from simokit.data import SceneArrays
from simokit.device import resolve_device
from simokit.merge import adamerging
from simokit.merge.api import merge_state_dicts
from simokit.merge.features import collect, head_parts, image_batches
from simokit.merge.inputs import Inputs
from simokit.merge.registry import get_method
from simokit.merge.select import SELECT_CRITERIA, Candidate, TapReference, pick, tap_reference, tap_score
from simokit.models import DinoVisionTransformer, MultiTaskModel
from simokit.models.heads import DenseHead
from simokit.realign.finetune import finetune_heads
from simokit.realign.least_squares import RealignResult, fit_realignment, realigned_model
from simokit.realign.lora import lora_realign
from simokit.recipe import MergeConfig
from simokit.tasks.evaluate import evaluate
from simokit.tasks.score import Metrics, normalized_score


@dataclass
class Row:
    """One line of the final table: a model and its test metrics."""

    name: str
    method: str
    hparams: dict[str, Any]
    selected_by: str
    realign: str
    metrics: Metrics
    score: float


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


@dataclass
class StudyResult:
    """Candidates with their scores, final test rows, timings and the selected deployable model."""

    candidates: list[Candidate] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    expert_val: Metrics = field(default_factory=dict)
    expert_test: Metrics = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    fit_stats: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    learned: dict[str, dict[str, Any]] = field(default_factory=dict)  # AdaMerging runs: losses, TAP, cost
    selected: MultiTaskModel | None = None
    selected_row: Row | None = None


class _Timer:
    def __init__(self, seconds: dict[str, float], key: str) -> None:
        self.seconds, self.key = seconds, key

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.seconds[self.key] = self.seconds.get(self.key, 0.0) + time.perf_counter() - self.t0


@dataclass
class _Study:
    """The context every step of a study shares, so steps take what they vary over, not ten arguments."""

    inputs: Inputs
    cfg: MergeConfig
    val: SceneArrays
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
        if method == adamerging.METHOD:
            return self.inputs.make_encoder(adamerging.adamerged_state(self.inputs.base_state, states, hp))
        return self.inputs.make_encoder(merge_state_dicts(self.inputs.base_state, states, method, **hp))

    def learn(self, hp: dict[str, Any], progress: bool) -> dict[str, Any]:
        """AdaMerging-TAP coefficients for one grid entry; returns the entry with them filled in."""
        cfg, inputs = self.cfg, self.inputs
        sums = [c for c in self.res.candidates if c.method == "sum"]
        if "init" not in hp and sums:
            # task arithmetic's alpha, chosen by the study's own (label-free unless 'eval') criterion
            hp = {**hp, "init": float(pick(sums, cfg.select).hparams.get("alpha", 0.3))}
        params = adamerging.AdaMergingParams.from_hparams(hp)
        images = torch.cat(list(image_batches(self.calib, cfg.tap_images, cfg.batch)))
        ref = self.tap_ref
        blocks = (
            {
                t: sorted({b for b, part in ref.parts[t] if part == "patch"} or {b for b, _ in ref.parts[t]})
                for t in inputs.tasks
            }
            if ref
            else {}
        )
        with _Timer(self.res.seconds, "adamerging"):
            result = adamerging.learn_coefficients(
                inputs.make_encoder(inputs.base_state),
                inputs.base_state,
                inputs.expert_states,
                blocks,
                images,
                params,
                progress,
                device=cfg.device,
            )
        learned = {**hp, "coefficients": result.coefficients}
        self.res.learned[_hp_key(learned)] = {k: v for k, v in vars(result).items() if k != "coefficients"}
        return learned

    def realign(self, merged: DinoVisionTransformer, mode: str) -> RealignResult:
        """Re-align `merged` to the heads with `mode` on the calibration images."""
        cfg = self.cfg
        if mode in ("lora", "finetune"):
            learn: Callable[..., RealignResult] = lora_realign if mode == "lora" else finetune_heads
            return learn(
                merged,
                self.inputs.heads,
                self.calib,
                n_images=cfg.realign_images,
                steps=cfg.finetune_steps,
                lr=cfg.finetune_lr,
                batch=cfg.batch,
            )
        return fit_realignment(
            merged,
            {},
            self.inputs.heads,
            self.calib,
            mode=mode,
            n_images=cfg.realign_images,
            ridge=cfg.ridge,
            batch=cfg.batch,
            expert_features=self.feats,
            device=cfg.device,
        )

    def score(self, method: str, hp: dict[str, Any]) -> Candidate:
        """TAP, aligned TAP and validation scores (plain and head re-aligned) of one grid point."""
        if self.tap_ref is None:
            raise RuntimeError("the TAP reference must be computed before scoring candidates")
        merged, cand, res = self.merge(method, hp), Candidate(method, hp), self.res
        with _Timer(res.seconds, "tap_select"):
            cand.tap = tap_score(merged, self.tap_ref)["mean"]
        with _Timer(res.seconds, "eval_select"):
            plain = MultiTaskModel(merged, dict(self.inputs.heads)).eval()
            cand.val_score = normalized_score(self.evaluate(plain, self.val), res.expert_val)
        with _Timer(res.seconds, "tap_aligned_select"):
            fitted = self.realign(merged, "head")
            cand.tap_aligned = sum(v["residual_after"] for v in fitted.stats.values()) / len(fitted.stats)
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
            with _Timer(self.res.seconds, f"realign_{mode}"):
                fitted = self.realign(merged, mode)
            model = realigned_model(merged, fitted)
            out[mode] = (self.evaluate(model, self.test), fitted.stats, model)
        return out


Evaluated = dict[str, tuple[Metrics, dict[str, dict[str, float]], MultiTaskModel]]


def run_study(
    inputs: Inputs,
    cfg: MergeConfig,
    val: SceneArrays,
    calib: SceneArrays,
    test: SceneArrays,
    eval_batch: int = 64,
    progress: bool = True,
) -> StudyResult:
    """Grid-search every method in `cfg`, select, re-align and evaluate the picks on `test`."""
    for method in cfg.methods:
        if method != adamerging.METHOD:
            get_method(method)  # unknown names fail before any work
        else:
            resolve_device(cfg.device)  # a GPU asked for and absent: say so now, not after the grid
    study = _Study(inputs, cfg, val, calib, test, eval_batch)
    res = study.res
    base = inputs.make_encoder(inputs.base_state)
    experts = {t: inputs.make_encoder(sd) for t, sd in inputs.expert_states.items()}
    res.expert_val = _expert_metrics(experts, inputs, val, eval_batch, cfg.device)
    res.expert_test = _expert_metrics(experts, inputs, test, eval_batch, cfg.device)
    parts = {t: head_parts(h, base.depth) for t, h in inputs.heads.items()}
    with _Timer(res.seconds, "tap_reference"):
        tap_batches = list(image_batches(calib, cfg.tap_images, cfg.batch))
        study.tap_ref = tap_reference(base, experts, parts, tap_batches, cfg.tap_metric, cfg.device)
    study.feats = _expert_features(experts, inputs.heads, cfg, calib)
    grid = [(m, hp) for m in cfg.methods for hp in _grid(cfg, m)]
    for method, hp in tqdm(grid, desc="merge grid", disable=not progress, leave=False):
        if method == adamerging.METHOD:
            continue
        res.candidates.append(study.score(method, hp))
    # learned merges go last: they start from task arithmetic's selected alpha
    for method, hp in grid:
        if method == adamerging.METHOD:
            res.candidates.append(study.score(method, study.learn(hp, progress)))
    zeroshot = MultiTaskModel(base, dict(inputs.heads)).eval()
    res.rows.append(study.row("zeroshot", None, "-", "none", study.evaluate(zeroshot, test)))
    memo: dict[int, Evaluated] = {}
    for method in cfg.methods:
        mine = [c for c in res.candidates if c.method == method]
        for by in SELECT_CRITERIA:
            study.final_rows(pick(mine, by), by, memo)
    return res


def _grid(cfg: MergeConfig, method: str) -> list[dict[str, Any]]:
    if cfg.grids.get(method):
        return list(cfg.grids[method])
    return adamerging.default_grid() if method == adamerging.METHOD else get_method(method).grid()


def _hp_key(hp: dict[str, Any]) -> str:
    """A short readable name for a learned candidate (its base method and init)."""
    return ", ".join(f"{k}={v}" for k, v in hp.items() if k != "coefficients")


def _expert_metrics(
    experts: dict[str, DinoVisionTransformer], inputs: Inputs, data: SceneArrays, batch: int, device: str
) -> Metrics:
    out: Metrics = {}
    for task, enc in experts.items():
        model = MultiTaskModel(enc, {task: inputs.heads[task]}).eval()
        out.update(evaluate(model, data, (task,), batch, num_classes=inputs.num_classes, device=device))
    return out


def result_to_json(res: StudyResult) -> dict[str, Any]:
    """Everything in a StudyResult except the models, as JSON-safe values."""
    return {
        "candidates": [vars(c) for c in res.candidates],
        "rows": [vars(r) for r in res.rows],
        "expert_val": res.expert_val,
        "expert_test": res.expert_test,
        "seconds": res.seconds,
        "fit_stats": res.fit_stats,
        "learned": res.learned,
        "selected": res.selected_row.name if res.selected_row else None,
    }


def result_from_json(data: dict[str, Any]) -> StudyResult:
    """Inverse of `result_to_json`; the selected model must be rebuilt with `rebuild_selected`."""
    res = StudyResult(
        candidates=[Candidate(**c) for c in data["candidates"]],
        rows=[Row(**r) for r in data["rows"]],
        expert_val=data["expert_val"],
        expert_test=data["expert_test"],
        seconds=data["seconds"],
        fit_stats=data["fit_stats"],
        learned=data.get("learned", {}),
    )
    res.selected_row = next((r for r in res.rows if r.name == data["selected"]), None)
    return res


def rebuild_selected(inputs: Inputs, res: StudyResult, cfg: MergeConfig, calib: SceneArrays) -> None:
    """Re-create the selected deployable model (one merge and one fit) for a cached study."""
    row = res.selected_row
    if row is None:
        raise RuntimeError("cached merge study has no selected model")
    study = _Study(inputs, cfg, calib, calib, calib, eval_batch=1, res=res)
    encoders = {t: inputs.make_encoder(sd) for t, sd in inputs.expert_states.items()}
    study.feats = _expert_features(encoders, inputs.heads, cfg, calib)
    merged = study.merge(row.method, row.hparams)
    res.selected = realigned_model(merged, study.realign(merged, row.realign))


def _expert_features(
    experts: dict[str, DinoVisionTransformer],
    heads: dict[str, DenseHead],
    cfg: MergeConfig,
    calib: SceneArrays,
) -> dict[str, Any]:
    """Each expert's features on the re-alignment images, for the blocks its head reads."""
    depth = next(iter(experts.values())).depth
    batches = list(image_batches(calib, cfg.realign_images, cfg.batch))
    return {
        t: collect(experts[t], batches, sorted({b for b, _ in head_parts(heads[t], depth)}), cfg.device)
        for t in heads
    }

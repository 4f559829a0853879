"""The label-free agreement score: its formula, and the evaluator's metrics read as agreement."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from own_helpers import write_experts

from simokit.data import SceneArrays
from simokit.merge.inputs import load_inputs
from simokit.pipeline.agreement import agreement_score, expert_model, pseudo_targets, task_agreement
from simokit.tasks.evaluate import evaluate
from simokit.tasks.metrics import make_metric


def test_agreement_score_is_the_normalised_distance_from_zeroshot_to_expert() -> None:
    assert agreement_score(70.0, 50.0, 100.0) == pytest.approx(0.4)  # higher is better (pix_acc)
    assert agreement_score(0.05, 0.2, 0.0) == pytest.approx(0.75)  # lower is better (abs_rel)
    assert agreement_score(0.2, 0.2, 0.0) == 0.0 and agreement_score(0.0, 0.2, 0.0) == 1.0
    assert agreement_score(0.3, 0.2, 0.0) == pytest.approx(-0.5)  # worse than zero-shot goes negative
    assert agreement_score(3.0, 2.0, 2.0) == 1.0  # zero-shot already equals the expert: nothing to lose


def test_task_agreement_averages_the_task_metrics() -> None:
    expert = {
        "seg": {"pix_acc": 100.0, "miou": 100.0},
        "depth": {"abs_rel": 0.0},
        "normal": {"mean_angle": 0.0},
    }
    zeroshot = {
        "seg": {"pix_acc": 60.0, "miou": 20.0},
        "depth": {"abs_rel": 0.4},
        "normal": {"mean_angle": 40.0},
    }
    merged = {
        "seg": {"pix_acc": 90.0, "miou": 60.0},
        "depth": {"abs_rel": 0.1},
        "normal": {"mean_angle": 30.0},
    }
    got = task_agreement(merged, zeroshot, expert)
    assert got["seg"] == pytest.approx((30 / 40 + 40 / 80) / 2)
    assert got["depth"] == pytest.approx(0.75) and got["normal"] == pytest.approx(0.25)


def test_evaluator_metrics_are_agreement_with_the_experts_outputs() -> None:
    rng = np.random.default_rng(0)
    ref_labels, labels = rng.integers(0, 4, (2, 6, 8)), rng.integers(0, 4, (2, 6, 8))
    seg = make_metric("seg", 4)
    seg.update(labels, ref_labels)
    assert seg.compute()["pix_acc"] == pytest.approx(100.0 * np.mean(labels == ref_labels))
    iou = [
        np.sum((labels == c) & (ref_labels == c)) / np.sum((labels == c) | (ref_labels == c))
        for c in range(4)
    ]
    assert seg.compute()["miou"] == pytest.approx(100.0 * np.mean(iou))
    ref_depth, depth = rng.uniform(0.5, 5.0, (2, 6, 8)), rng.uniform(0.5, 5.0, (2, 6, 8))
    dm = make_metric("depth")
    dm.update(depth, ref_depth)
    assert dm.compute()["abs_rel"] == pytest.approx(np.mean(np.abs(depth - ref_depth) / ref_depth))
    a, b = rng.normal(size=(2, 3, 6, 8)), rng.normal(size=(2, 3, 6, 8))
    a, b = a / np.linalg.norm(a, axis=1, keepdims=True), b / np.linalg.norm(b, axis=1, keepdims=True)
    nm = make_metric("normal")
    nm.update(a, b)
    angle = np.degrees(np.arccos(np.clip((a * b).sum(1), -1, 1)))
    assert nm.compute()["mean_angle"] == pytest.approx(angle.mean(), abs=1e-6)


def test_each_expert_agrees_fully_with_its_own_pseudo_targets(tmp_path: Path) -> None:
    base, experts = write_experts(tmp_path)
    inputs, _ = load_inputs(base, list(experts))
    rng = np.random.default_rng(1)
    held = SceneArrays(
        image=rng.integers(0, 256, (3, 42, 56, 3), dtype=np.uint8), domain=np.zeros(3, np.uint8)
    )
    targets = pseudo_targets(inputs, held, batch=2)
    assert targets.seg.shape == (3, 42, 56) and targets.normal.shape == (3, 42, 56, 3)
    for task in inputs.tasks:
        got = evaluate(expert_model(inputs, task), targets, (task,), num_classes=inputs.num_classes)[task]
        if task == "seg":
            assert got["pix_acc"] == 100.0 and got["miou"] == 100.0
        elif task == "depth":
            assert got["abs_rel"] < 1e-6
        else:
            assert got["mean_angle"] < 0.1

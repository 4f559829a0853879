"""The task table is complete: every entry's kinds resolve, and a perfect prediction scores, costs and
draws as it should, through the same data layout, losses, metrics and colourisers the pipeline uses."""

from __future__ import annotations

from dataclasses import fields, replace

import numpy as np
import pytest
import torch

from simokit.data import TASK_KEYS, SceneArrays, targets_to_tensors
from simokit.data.targets import TARGETS, channels_first
from simokit.errors import ConfigError, DataError
from simokit.models.heads import ACTIVATIONS
from simokit.runtime.overlay import COLOURISERS, colour_of, task_map
from simokit.tasks import TASKS, get_task
from simokit.tasks.losses import LOSSES, loss_of_kind, task_loss
from simokit.tasks.metrics import METRICS, make_metric
from simokit.tasks.spec import Colour, OutputKind, Resize, TaskSpec, Tolerance, output_kind, resize_rule

B, H, W = 2, 6, 5
PALETTE = np.array([[i * 20, 255 - i * 20, (i * 53) % 256] for i in range(12)], np.uint8)


def _target(task: str, seed: int = 0) -> np.ndarray:
    """A random stored target (B, H, W[, C]) in the data layout of `task`."""
    rng = np.random.default_rng(seed)
    layout, spec = TARGETS[task], get_task(task)
    if layout.classes:
        return rng.integers(0, spec.out_channels, (B, H, W)).astype(layout.dtype)
    if np.issubdtype(layout.dtype, np.integer):  # a stored mask
        return rng.integers(0, 2, (B, H, W, *layout.shape)).astype(layout.dtype)
    values = rng.uniform(0.5, 1.0, (B, H, W, *layout.shape))  # positive: depth 0 means no label
    if spec.output is OutputKind.UNIT_VECTORS:
        values = rng.standard_normal((B, H, W, *layout.shape))
        values /= np.linalg.norm(values, axis=-1, keepdims=True)
    return values.astype(layout.dtype)


def _perfect(task: str, target: np.ndarray) -> np.ndarray:
    """The head output (B, C, H, W) that predicts `target` exactly: confident one-hot logits for classes."""
    spec = get_task(task)
    if spec.classes:
        return 20.0 * np.moveaxis(np.eye(spec.out_channels, dtype=np.float32)[target], -1, 1)
    out = channels_first(task, target).astype(np.float32)
    return out[:, None] if out.ndim == 3 else out


@pytest.mark.parametrize("task", list(TASKS))
def test_every_entry_resolves(task: str) -> None:
    spec = get_task(task)
    assert spec.name == task and spec.activation in ACTIVATIONS
    assert callable(loss_of_kind(spec.loss)) and spec.metric in METRICS and spec.colour in COLOURISERS
    assert spec.resize in Resize and spec.output in OutputKind and spec.tolerance in Tolerance
    # The data layer's half of the table: a stored target whose channels match the head's.
    layout = TARGETS[task]
    assert layout.classes == spec.classes
    assert spec.classes or layout.channels == spec.out_channels
    # Unit vectors are renormalised after resizing, and only they are.
    assert (spec.output is OutputKind.UNIT_VECTORS) == (spec.resize is Resize.LINEAR_UNIT)
    assert (spec.output is OutputKind.UNIT_VECTORS) == (spec.activation == "normalize")


def test_the_layers_agree_on_the_task_names() -> None:
    assert set(TASKS) == set(TARGETS) == set(TASK_KEYS)
    assert set(TASKS) <= {f.name for f in fields(SceneArrays)}
    assert set(COLOURISERS) == set(Colour)


@pytest.mark.parametrize("task", list(TASKS))
def test_a_perfect_prediction_scores_best_on_every_table_metric(task: str) -> None:
    spec = get_task(task)
    target = _target(task)
    metric = make_metric(task, spec.out_channels)
    metric.update(_perfect(task, target), channels_first(task, target))
    values = metric.compute()
    assert set(values) == set(spec.metrics)
    for name, higher in spec.metrics.items():
        assert values[name] == pytest.approx(100.0 if higher else 0.0, abs=1e-2), name


@pytest.mark.parametrize("task", list(TASKS))
def test_the_loss_is_zero_on_a_perfect_prediction_and_grows_off_it(task: str) -> None:
    target = _target(task)
    batch = targets_to_tensors({task: target})[task]
    perfect = torch.from_numpy(_perfect(task, target))
    wrong = torch.from_numpy(_perfect(task, _target(task, seed=1)))
    assert float(task_loss(task, perfect, batch)) == pytest.approx(0.0, abs=1e-6)
    assert float(task_loss(task, wrong, batch)) > 0.05


def test_loss_values_by_kind() -> None:
    target = torch.tensor([[[[2.0, 4.0]]]])
    assert float(LOSSES["l1"](torch.tensor([[[[1.0, 1.0]]]]), target)) == pytest.approx(2.0)
    assert float(LOSSES["log_l1"](torch.tensor([[[[4.0, 4.0]]]]), target)) == pytest.approx(np.log(2) / 2)
    up, right = torch.tensor([0.0, 1.0, 0.0]), torch.tensor([1.0, 0.0, 0.0])
    cos = LOSSES["cosine"](up.view(1, 3, 1, 1), right.view(1, 3, 1, 1))
    assert float(cos) == pytest.approx(1.0)  # 90 degrees apart
    logits = torch.log(torch.tensor([0.25, 0.75])).view(1, 2, 1, 1)
    ce = LOSSES["cross_entropy"](logits, torch.tensor([[[1]]]))
    assert float(ce) == pytest.approx(-np.log(0.75), rel=1e-5)


@pytest.mark.parametrize("task", list(TASKS))
def test_a_perfect_prediction_draws_like_its_target(task: str) -> None:
    target = _target(task)
    colouriser = colour_of(task)
    drawn = [
        colouriser.draw(task_map(colouriser, v), PALETTE, (0.5, 1.0))
        for v in (_perfect(task, target)[0], channels_first(task, target)[0])
    ]
    assert drawn[0].shape == (H, W, 3) and drawn[0].dtype == np.uint8
    np.testing.assert_array_equal(drawn[0], drawn[1])


def test_colourisers_draw_known_colours() -> None:
    labels = np.array([[0, 3], [11, 1]])
    seg = COLOURISERS[Colour.PALETTE].draw(labels, PALETTE, None)
    np.testing.assert_array_equal(seg, PALETTE[labels])
    gray = COLOURISERS[Colour.GRAY].draw(np.array([[0.0, 1.0]]), PALETTE, None)
    np.testing.assert_array_equal(gray, [[[0, 0, 0], [255, 255, 255]]])
    normals = COLOURISERS[Colour.NORMALS].draw(np.array([[[0.0, 0.0, -1.0]]]), PALETTE, None)
    np.testing.assert_array_equal(normals, [[[127, 127, 0]]])
    depth = COLOURISERS[Colour.DEPTH].draw(np.array([[0.5, 40.0]]), PALETTE, (0.5, 40.0))
    np.testing.assert_array_equal(depth, [[[122, 4, 3], [48, 18, 59]]])  # the colour map's warm and cool ends
    assert colour_of("not-a-task") is COLOURISERS[Colour.GRAY]  # unknown outputs still show


def test_export_kind_and_resize_rule() -> None:
    assert output_kind("seg") is OutputKind.LOGITS and output_kind("seg", "labels") is OutputKind.LABELS
    assert output_kind("depth", "labels") is OutputKind.METRES  # only class outputs become labels
    assert [resize_rule(t) for t in ("seg", "depth", "normal")] == [
        Resize.LINEAR,
        Resize.LINEAR,
        Resize.LINEAR_UNIT,
    ]
    assert resize_rule("seg", labels=True) is Resize.NEAREST
    assert get_task("depth").tolerance is Tolerance.RELATIVE


def test_unknown_names_are_refused_with_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="choose from seg, depth"):
        get_task("pose")
    with pytest.raises(ConfigError, match="cross_entropy"):
        loss_of_kind("hinge")
    with pytest.raises(DataError, match="normal"):
        channels_first("pose", np.zeros((1, 2, 2)))
    with pytest.raises(ConfigError, match="primary"):
        replace(get_task("edge"), primary="miou")


def test_an_unknown_metric_kind_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(TASKS, "edge", replace(get_task("edge"), metric="psnr"))
    with pytest.raises(ConfigError, match=r"psnr.*confusion"):
        make_metric("edge")


def test_entries_are_frozen() -> None:
    with pytest.raises(AttributeError):
        get_task("seg").loss = "l1"  # type: ignore[misc]
    assert isinstance(get_task("seg"), TaskSpec)

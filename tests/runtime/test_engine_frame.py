"""Frame-IO bundles: the graph resizes, flips, argmaxes and upsamples; outputs equal today's numpy path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tiny_models import tiny_model

from simokit.data import PALETTE
from simokit.export.bundle import write_bundle
from simokit.export.frame_io import label_dtype
from simokit.export.onnx import ExportSpec
from simokit.runtime import load
from simokit.runtime.bundle import Channels, GraphIO, read_meta
from simokit.runtime.describe import describe
from simokit.runtime.engine import EmptyFrameError, MixedFrameSizesError

cv2 = pytest.importorskip("cv2")
TASKS = ("seg", "depth", "normal")


def _frames(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """Camera-like frames: smooth texture, so downscaling does real averaging."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(n, h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    return np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_CUBIC) for f in small])


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    model = tiny_model(seed=1)
    root = tmp_path_factory.mktemp("frame")
    verify = _frames(2, 56, 56)
    specs = {
        "frame": ExportSpec(TASKS, 56, 56, input_kind="uint8", io="frame", seg_output="labels"),
        "labels": ExportSpec(TASKS, 56, 56, input_kind="uint8", seg_output="labels"),
        "logits": ExportSpec(TASKS, 56, 56, input_kind="uint8"),
    }
    return {k: write_bundle(root / k, model, s, verify, ("a",) * 11, PALETTE) for k, s in specs.items()}


def test_meta_records_the_io_and_old_bundles_read_as_model_io(bundles: dict[str, Path]) -> None:
    meta = read_meta(bundles["frame"])
    assert meta.input.io is GraphIO.FRAME and meta.input.channels is Channels.BGR
    assert meta.outputs["seg"] == {"dtype": "uint8", "shape": ["B", "H", "W"], "kind": "labels"}
    assert label_dtype(256) == "uint8" and label_dtype(257) == "int32"  # ids past 255 need int32
    assert meta.outputs["depth"]["shape"] == ["B", 1, "H", "W"]
    raw = json.loads((bundles["logits"] / "meta.json").read_text())
    del raw["input"]["io"], raw["input"]["channels"]  # a bundle written before frame IO
    (bundles["logits"] / "meta.json").write_text(json.dumps(raw))
    old = read_meta(bundles["logits"])
    assert old.input.io is GraphIO.MODEL and old.input.channels is Channels.RGB
    names = [v["graph"] for v in meta.extra["verifications"]]
    assert names == ["fp32", "fp32 frame IO"]
    text = describe(bundles["frame"])
    assert "input: image uint8 (B, H, W, 3) BGR frames of any size, resized in the graph to 56x56" in text


# The in-graph area resize equals OpenCV's INTER_AREA bit for bit except at rounding ties (float64
# sums vs OpenCV's float32 ones): at 480x640 one of the 18816 resized pixels of these frames is one
# grey level off, which moves normals by up to 4.5e-4 and depth by ~1e-4 where it propagates.
# 40x60 (one axis smaller than the model) takes OpenCV's fixed-point path, reproduced exactly.
TOLERANCE = {(56, 56): 1e-4, (480, 640): 1e-3, (723, 1001): 1e-4, (40, 60): 1e-4}


@pytest.mark.parametrize("size", list(TOLERANCE))
def test_frame_io_equals_the_numpy_path(bundles: dict[str, Path], size: tuple[int, int]) -> None:
    frames = _frames(2, *size, seed=size[0])
    got = load(bundles["frame"], threads=1).infer(frames)
    labels = load(bundles["labels"], threads=1).infer(frames)
    today = load(bundles["logits"], threads=1).infer(frames)
    assert got["seg"].shape == (2, *size) and got["seg"].dtype == np.uint8
    assert (got["seg"] == labels["seg"]).mean() >= 0.999
    rel = np.abs(got["depth"] - today["depth"]) / np.maximum(np.abs(today["depth"]), 1.0)
    assert rel.max() <= TOLERANCE[size]
    np.testing.assert_allclose(got["normal"], today["normal"], rtol=0, atol=TOLERANCE[size])
    # labels from upsampled logits (today's default) agree where no class boundary moved
    assert (got["seg"] == today["seg"].argmax(1)).mean() > 0.9


def test_camera_frames_mono_rgba_empty_and_mixed(bundles: dict[str, Path]) -> None:
    engine = load(bundles["frame"], threads=1)
    bgr = _frames(1, 60, 80)[0]
    grey = bgr[..., 1]
    mono = engine.infer(grey)
    ref = engine.infer(np.repeat(grey[..., None], 3, axis=-1))
    np.testing.assert_array_equal(mono["seg"], ref["seg"])
    rgba = np.concatenate([bgr, np.full_like(bgr[..., :1], 7)], axis=-1)
    np.testing.assert_array_equal(engine.infer(rgba)["depth"], engine.infer(bgr)["depth"])
    rgb = engine.infer(np.ascontiguousarray(bgr[..., ::-1]), bgr=False)
    np.testing.assert_array_equal(rgb["seg"], engine.infer(bgr)["seg"])
    with pytest.raises(EmptyFrameError, match="empty frame"):
        engine.infer(np.zeros((0, 0, 3), np.uint8))
    with pytest.raises(MixedFrameSizesError, match="different sizes"):
        engine.infer([bgr, bgr[:30]])  # type: ignore[arg-type]


def test_fixed_and_model_output_sizes(tmp_path: Path) -> None:
    model = tiny_model(seed=1)
    verify = _frames(1, 56, 56)
    for size, shape in (("model", (56, 56)), ("30x40", (30, 40))):
        spec = ExportSpec(
            TASKS, 56, 56, input_kind="uint8", io="frame", seg_output="labels", output_size=size
        )
        out = load(write_bundle(tmp_path / size, model, spec, verify), threads=1).infer(
            _frames(1, 99, 120)[0]
        )
        assert out["seg"].shape == shape and out["normal"].shape == (3, *shape)
        np.testing.assert_allclose(np.linalg.norm(out["normal"], axis=0), 1.0, atol=1e-4)


def test_triton_repository_takes_frames_of_any_size(bundles: dict[str, Path], tmp_path: Path) -> None:
    from simokit.export.triton import TritonOptions, export_triton

    repo = export_triton(bundles["frame"], tmp_path / "repo", TritonOptions())
    config = (repo / "config.pbtxt").read_text()
    assert "dims: [ -1, -1, 3 ]" in config and "dims: [ 1, -1, -1 ]" in config


def test_fp16_frame_graph_keeps_its_pre_and_post_processing_in_fp32(tmp_path: Path) -> None:
    import onnx

    spec = ExportSpec(TASKS, 56, 56, input_kind="uint8", io="frame", seg_output="labels", fp16=True)
    out = write_bundle(tmp_path / "b", tiny_model(seed=1), spec, _frames(2, 56, 56))
    graph = onnx.load(str(out / "model.fp16.onnx"))
    casts = [n for n in graph.graph.node if n.name.startswith("frame/") and n.op_type == "Cast"]
    assert casts and all(a.i != onnx.TensorProto.FLOAT16 for n in casts for a in n.attribute)
    frame = _frames(1, 480, 640)[0]
    full, half = (load(out, threads=1, precision=p).infer(frame) for p in (None, "fp16"))
    assert (full["seg"] == half["seg"]).mean() > 0.99
    np.testing.assert_allclose(half["normal"], full["normal"], atol=5e-2)


def test_build_engine_checks_frame_sizes_of_frame_io_bundles_before_tensorrt(
    bundles: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Frame sizes, not --height/--width, shape a frame graph's profile; bad ones fail before TensorRT."""
    from simokit.cli import main
    from simokit.runtime.capabilities import installed

    frame, model = str(bundles["frame"]), str(bundles["logits"])
    cases = [
        ([frame, "--height", "224,224,448"], "--frame-min/--frame-opt/--frame-max HxW instead of --height"),
        ([frame, "--frame-max", "480"], "--frame-max '480' must be HEIGHTxWIDTH"),
        ([frame, "--frame-min", "500x500", "--frame-max", "400x400"], "must grow from min to opt to max"),
        ([model, "--frame-max", "480x640"], "takes model-size input (--io model)"),
    ]
    if not installed("tensorrt"):  # past the checks: the frame graph is no longer refused up front
        cases.append(([frame, "--frame-max", "1080x1920"], "needs tensorrt"))
    for argv, message in cases:
        assert main(["build-engine", *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (argv, err)
    assert not (bundles["frame"] / "model.engine").exists()


@pytest.mark.parametrize("kind", ["frame", "logits"])
def test_reused_outputs_equal_fresh_ones_and_are_reallocated_only_for_a_new_size(
    bundles: dict[str, Path], kind: str
) -> None:
    fresh, reused = load(bundles[kind], threads=1), load(bundles[kind], threads=1)
    reused.reuse_outputs()  # type: ignore[attr-defined]
    first = reused.infer(_frames(2, 56, 56, seed=1))
    kept = {t: v.copy() for t, v in first.items()}
    second = reused.infer(_frames(2, 56, 56, seed=2))
    for task in TASKS:
        assert np.shares_memory(first[task], second[task])  # the same arrays, written again
        np.testing.assert_array_equal(second[task], fresh.infer(_frames(2, 56, 56, seed=2))[task])
        assert not np.array_equal(kept[task], second[task])  # ...so a kept result must be copied
    other = reused.infer(_frames(1, 70, 84, seed=3))
    expected = fresh.infer(_frames(1, 70, 84, seed=3))
    for task in TASKS:
        assert not np.shares_memory(other[task], second[task])
        np.testing.assert_array_equal(other[task], expected[task])
    reused.reuse_outputs(False)  # type: ignore[attr-defined]
    assert not np.shares_memory(reused.infer(_frames(1, 70, 84))["depth"], other["depth"])


def test_engines_opened_for_streams_let_idle_threads_sleep(bundles: dict[str, Path]) -> None:
    """load(spin=False) (what `simokit run` uses) reaches the ONNX Runtime session; outputs are unchanged."""
    frame = _frames(1, 70, 90)[0]
    entries, outs = {}, {}
    for spin in (True, False):
        engine = load(bundles["frame"], threads=1, spin=spin)
        options = engine.session.get_session_options()  # type: ignore[attr-defined]
        try:
            entries[spin] = options.get_session_config_entry("session.intra_op.allow_spinning")
        except Exception:  # not set: ONNX Runtime's default, spinning
            entries[spin] = None
        outs[spin] = engine.infer(frame)
    assert entries == {True: None, False: "0"}
    np.testing.assert_array_equal(outs[True]["depth"], outs[False]["depth"])

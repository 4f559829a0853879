"""Routed bundles with frame IO: the router graph and every domain engine take camera frames of any
size and resize them inside; outputs equal the chosen domain engine's, decisions the model-IO bundle's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from simokit.cli import main
from simokit.data import to_tensor_batch
from simokit.export.onnx import ExportSpec
from simokit.routing.bundle import write_routed_bundle
from simokit.routing.fit import build_router
from simokit.runtime import load
from simokit.runtime.bundle import BundleError, Channels, GraphIO, read_meta
from simokit.runtime.onnx_session import CPU, session_for
from simokit.runtime.routed import RoutedEngine
from tests.routing.test_deltas import _base, _domain_model
from tests.routing.test_routed import TASKS, _frames

cv2 = pytest.importorskip("cv2")
MODEL_IO = ExportSpec(TASKS, 56, 56, input_kind="uint8")
FRAME_IO = ExportSpec(TASKS, 56, 56, input_kind="uint8", io="frame", seg_output="labels")
DOMAINS = ["warm", "blue", "blue", "warm", "warm"]
SIZES = [(56, 56), (84, 112), (40, 60)]  # the model's size, larger (box filter), smaller (fixed point)
# Router features (up to ~3 in size) of the in-graph resize vs OpenCV's: equal at the model's size
# and on OpenCV's fixed-point path; at 84x112 456 of the 47040 resized values are one grey level off
# (rounding ties), which moves features by up to 8.3e-3.
FEATURES_TOLERANCE = {(56, 56): 1e-6, (84, 112): 2e-2, (40, 60): 1e-6}


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One router and two domain engines, written as model IO, frame IO, and frame IO + deltas."""
    base = _base()
    support = {d: to_tensor_batch(_frames(d, 12, seed=i)) for i, d in enumerate(("warm", "blue"))}
    router = build_router(base, support, block=0, mode="grid", energy=0.95, max_rank=4)
    engines = {"warm": _domain_model(base, 1, rank=3), "blue": _domain_model(base, 2, rank=3)}
    images = {d: _frames(d, 2, seed=9) for d in engines}
    root = tmp_path_factory.mktemp("rf")
    kinds = {"model": (MODEL_IO, False), "frame": (FRAME_IO, False), "delta": (FRAME_IO, True)}
    return {
        kind: write_routed_bundle(
            root / kind, engines, router, base, spec, images, {}, deltas=deltas, rank_hint=3
        )
        for kind, (spec, deltas) in kinds.items()
    }


def _mixed(size: tuple[int, int]) -> np.ndarray:
    """BGR camera frames at `size`, domains interleaved as DOMAINS."""
    warm, blue = _frames("warm", 3, seed=20), _frames("blue", 2, seed=21)
    rgb = np.concatenate([warm[:1], blue, warm[1:]])
    h, w = size
    return np.stack([cv2.resize(f[..., ::-1], (w, h), interpolation=cv2.INTER_CUBIC) for f in rgb])


def test_meta_router_and_every_engine_record_frame_io(bundles: dict[str, Path]) -> None:
    for kind in ("frame", "delta"):
        root = bundles[kind]
        for where in (root, root / "domains" / "warm", root / "domains" / "blue"):
            meta = read_meta(where)
            assert meta.input.io is GraphIO.FRAME and meta.input.channels is Channels.BGR, where
            assert meta.outputs["seg"] == {"dtype": "uint8", "shape": ["B", "H", "W"], "kind": "labels"}
        (inp,) = session_for(root / "router.onnx", providers=CPU).get_inputs()
        assert inp.type == "tensor(uint8)" and [isinstance(d, str) for d in inp.shape] == [
            True,
            True,
            True,
            False,
        ]
    for domain in ("warm", "blue"):  # base graph + delta verified against torch on the frames
        check = read_meta(bundles["delta"] / "domains" / domain).extra["verifications"][-1]
        assert check["graph"] == "fp32, base + delta" and all(e["ok"] for e in check["outputs"].values())
    router = onnx.load(str(bundles["delta"] / "router.onnx"), load_external_data=False)
    assert any(t.data_location == onnx.TensorProto.EXTERNAL for t in router.graph.initializer)
    (model_inp,) = session_for(bundles["model"] / "router.onnx", providers=CPU).get_inputs()
    assert model_inp.shape[1:] == [56, 56, 3]  # model IO unchanged


@pytest.mark.parametrize("kind", ["frame", "delta"])
@pytest.mark.parametrize("size", SIZES)
def test_routed_outputs_equal_the_chosen_domain_engine(
    bundles: dict[str, Path], kind: str, size: tuple[int, int]
) -> None:
    root = bundles[kind]
    engine = load(root, threads=1)
    assert isinstance(engine, RoutedEngine)
    frames = _mixed(size)
    out = engine.infer(frames)
    assert engine.last_domains == DOMAINS
    assert out["seg"].shape == (5, *size) and out["seg"].dtype == np.uint8
    assert out["depth"].shape == (5, 1, *size)
    for domain in ("warm", "blue"):
        rows = [i for i, d in enumerate(DOMAINS) if d == domain]
        ref = load(root / "domains" / domain, threads=1).infer(frames[rows])
        np.testing.assert_array_equal(out["seg"][rows], ref["seg"])
        np.testing.assert_allclose(out["depth"][rows], ref["depth"], rtol=1e-6, atol=0)


@pytest.mark.parametrize("size", SIZES)
def test_routing_decisions_equal_the_model_io_bundle(bundles: dict[str, Path], size: tuple[int, int]) -> None:
    frames = _mixed(size)
    model, frame = load(bundles["model"], threads=1), load(bundles["frame"], threads=1)
    assert isinstance(model, RoutedEngine) and isinstance(frame, RoutedEngine)
    model.infer(frames)
    frame.infer(frames)
    assert frame.last_domains == model.last_domains == DOMAINS
    singles = {}  # frame by frame: the hysteresis path
    for name, engine in (("model", model), ("frame", frame)):
        singles[name] = [(engine.infer(f), engine.last_domains[0])[1] for f in frames]
    assert singles["frame"] == singles["model"]
    # the features themselves: the graph's resize against OpenCV's INTER_AREA in numpy
    rgb = np.stack([cv2.resize(f, (56, 56), interpolation=cv2.INTER_AREA) for f in frames[..., ::-1]])
    (want,) = model.features.run(None, {"image": np.ascontiguousarray(rgb)})
    (got,) = frame.features.run(None, {"image": frames})
    np.testing.assert_allclose(got, want, rtol=0, atol=FEATURES_TOLERANCE[size])


def test_mismatched_router_or_engine_is_a_named_error(bundles: dict[str, Path], tmp_path: Path) -> None:
    broken = Path(shutil.copytree(bundles["frame"], tmp_path / "broken"))
    meta = json.loads((broken / "meta.json").read_text())
    del meta["files"]  # the size table would name the swapped file first
    (broken / "meta.json").write_text(json.dumps(meta))
    shutil.copyfile(bundles["model"] / "router.onnx", broken / "router.onnx")
    with pytest.raises(BundleError, match="router graph takes model-size inputs"):
        load(broken)
    shutil.copyfile(bundles["frame"] / "router.onnx", broken / "router.onnx")
    shutil.rmtree(broken / "domains" / "blue")
    shutil.copytree(bundles["model"] / "domains" / "blue", broken / "domains" / "blue")
    engine = load(broken)
    engine.infer(_mixed((56, 56))[:1])  # warm only: the blue engine is not opened yet
    with pytest.raises(BundleError, match="model IO differs from the routed bundle's frame IO"):
        engine.infer(_mixed((56, 56))[1:3])


def test_build_refuses_routed_frame_io_with_float_input_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIMOKIT_CACHE", str(tmp_path / "cache"))
    sets = ["--set", "routing.domains=[indoor, outdoor]"]
    args = ["build", "--out", str(tmp_path / "b"), "--io", "frame", "--input", "float", *sets]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "--io frame takes uint8 camera frames" in err and "\n" not in err and not (tmp_path / "b").exists()

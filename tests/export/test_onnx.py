"""ONNX export: equality with torch (fp32), dynamic batch and size, uint8 input, labels, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from simokit.data import to_tensor_batch
from simokit.errors import ConfigError, ShapeError
from simokit.export.onnx import ExportModule, ExportSpec, example_input, export_onnx
from simokit.export.slim import SLIM_TOLERANCE
from simokit.export.verify import VerificationError, verify_onnx
from simokit.models import HeadConfig, MultiTaskModel, build_encoder, build_head

TASKS = ("seg", "depth", "normal")


@pytest.fixture(scope="module")
def model() -> MultiTaskModel:
    torch.manual_seed(0)
    enc = build_encoder("vitnano14")
    heads = {
        "seg": build_head(HeadConfig("linear", 11, "none", batch_norm=True, use_cls=True), 48),
        "depth": build_head(HeadConfig("linear", 1, "exp", layers=(0, 1)), 48),
        "normal": build_head(HeadConfig("linear", 3, "normalize"), 48),
    }
    with torch.no_grad():
        heads["seg"].bn.running_mean.uniform_(-0.5, 0.5)  # type: ignore[union-attr,operator]
    return MultiTaskModel(enc, heads).eval()


def _images(n: int, h: int = 56, w: int = 56, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)


def test_fp32_export_matches_torch_with_dynamic_batch(model: MultiTaskModel, tmp_path: Path) -> None:
    spec = ExportSpec(TASKS, 56, 56)
    path = export_onnx(model, spec, tmp_path / "m.onnx")
    for n in (1, 3):
        x = to_tensor_batch(_images(n, seed=n)).numpy()
        report = verify_onnx(model, spec, path, x)
        assert report.passed and report.images == n
        assert all(e.max_abs < 1e-4 for e in report.outputs.values())
        assert report.outputs["seg"].label_agreement == 1.0
    graph = onnx.load(str(path))
    props = {p.key: p.value for p in graph.metadata_props}
    assert props["simokit.tasks"] == "seg,depth,normal"
    assert graph.opset_import[0].version >= 17
    assert [o.name for o in graph.graph.output] == list(TASKS)
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def test_uint8_input_bakes_normalisation_and_labels_output(model: MultiTaskModel, tmp_path: Path) -> None:
    spec = ExportSpec(TASKS, 56, 56, input_kind="uint8", seg_output="labels")
    path = export_onnx(model, spec, tmp_path / "u8.onnx")
    images = _images(2)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    seg, depth, normal = sess.run(None, {"image": images})
    with torch.no_grad():
        ref = model(to_tensor_batch(images))
    assert seg.dtype == np.int32 and seg.shape == (2, 56, 56)
    np.testing.assert_array_equal(seg, ref["seg"].argmax(dim=1).numpy())
    np.testing.assert_allclose(depth, ref["depth"].numpy(), rtol=0, atol=1e-4)
    np.testing.assert_allclose(normal, ref["normal"].numpy(), rtol=0, atol=1e-4)
    assert verify_onnx(model, spec, path, images).passed


def test_tampered_graph_fails_verification(model: MultiTaskModel, tmp_path: Path) -> None:
    spec = ExportSpec(TASKS, 56, 56)
    path = export_onnx(model, spec, tmp_path / "m.onnx")
    graph = onnx.load(str(path))
    init = max(graph.graph.initializer, key=lambda t: len(t.raw_data))
    arr = onnx.numpy_helper.to_array(init).copy()
    arr.flat[0] += 1.0
    init.CopyFrom(onnx.numpy_helper.from_array(arr, init.name))
    onnx.save(graph, str(path))
    with pytest.raises(VerificationError, match="beyond tolerance"):
        verify_onnx(model, spec, path, to_tensor_batch(_images(2)).numpy())


def test_bad_specs_are_named_errors(model: MultiTaskModel, tmp_path: Path) -> None:
    with pytest.raises(ShapeError, match="multiple of the patch size"):
        ExportSpec(TASKS, 50, 56)
    with pytest.raises(ConfigError, match="input kind"):
        ExportSpec(TASKS, 56, 56, input_kind="fp16")
    with pytest.raises(ConfigError, match="opset"):
        ExportSpec(TASKS, 56, 56, opset=13)
    with pytest.raises(ConfigError, match="no head for task"):
        export_onnx(model, ExportSpec(("edge",), 56, 56), tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def _max_errors(model: MultiTaskModel, spec: ExportSpec, path: Path, x: np.ndarray) -> list[float]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref = ExportModule(model, spec)(torch.from_numpy(x))
    got = session.run(None, {"image": x})
    return [float(np.abs(r.numpy() - g).max()) for r, g in zip(ref, got, strict=True)]


@pytest.mark.parametrize("kind", ["uint8", "float"])
def test_dynamic_size_graph_matches_torch_at_sizes_it_was_not_traced_at(
    model: MultiTaskModel, kind: str, tmp_path: Path
) -> None:
    spec = ExportSpec(TASKS, 56, 56, input_kind=kind, dynamic_hw=True)
    path = export_onnx(model, spec, tmp_path / "dyn.onnx")
    shape = onnx.load(str(path)).graph.input[0].type.tensor_type.shape
    dims = [d.dim_param or d.dim_value for d in shape.dim]
    assert dims == (["batch", "height", "width", 3] if kind == "uint8" else ["batch", 3, "height", "width"])
    # the native 4x4 grid skips position resampling in eager mode (legacy offset 0.1): the graph must too
    for size in [(56, 56), (84, 112), (126, 42)]:
        x = example_input(spec, 2, size, seed=size[0])
        assert max(_max_errors(model, spec, path, x)) < 1e-4, size


def test_dynamic_size_dpt_heads_and_antialias_refusal(tmp_path: Path) -> None:
    torch.manual_seed(3)
    heads = {"depth": build_head(HeadConfig("dpt", 1, "exp", layers=(0, 1, 2, 3), dpt_features=16), 48)}
    dpt = MultiTaskModel(build_encoder("vitnano14", depth=4), heads).eval()
    spec = ExportSpec(("depth",), 56, 56, input_kind="uint8", dynamic_hw=True)
    path = export_onnx(dpt, spec, tmp_path / "dpt.onnx")
    for size in [(70, 98), (28, 56)]:
        x = example_input(spec, 1, size)
        assert _max_errors(dpt, spec, path, x)[0] < 1e-4 * 50  # depth in metres, exp of ~N(0,1) logits
    aa = MultiTaskModel(build_encoder("vitnano14", depth=4, interpolate_antialias=True), heads).eval()
    with pytest.raises(ConfigError, match="antialias"):
        export_onnx(aa, spec, tmp_path / "aa.onnx")
    assert not (tmp_path / "aa.onnx").exists()


def test_slimming_shrinks_the_graph_and_only_when_outputs_stay_equal(
    model: MultiTaskModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    import onnxslim

    spec = ExportSpec(TASKS, 56, 56, input_kind="uint8")
    path = export_onnx(model, spec, tmp_path / "slim.onnx")
    info = json.loads({p.key: p.value for p in onnx.load(str(path)).metadata_props}["simokit.slim"])
    assert info["applied"] and info["nodes_after"] < 0.8 * info["nodes_before"]
    assert info["max_rel_diff"] <= SLIM_TOLERANCE
    assert max(_max_errors(model, spec, path, example_input(spec, 2))) < 1e-4

    real_slim = onnxslim.slim

    def broken_slim(graph: onnx.ModelProto) -> onnx.ModelProto:
        out = real_slim(graph)
        init = max(out.graph.initializer, key=lambda t: t.ByteSize())
        arr = onnx.numpy_helper.to_array(init) * 1.5
        init.CopyFrom(onnx.numpy_helper.from_array(arr, init.name))
        return out

    monkeypatch.setattr(onnxslim, "slim", broken_slim)
    path = export_onnx(model, spec, tmp_path / "kept.onnx")
    info = json.loads({p.key: p.value for p in onnx.load(str(path)).metadata_props}["simokit.slim"])
    assert not info["applied"] and "kept the unsimplified graph" in info["reason"]
    assert max(_max_errors(model, spec, path, example_input(spec, 2))) < 1e-4

"""FP16 conversion: overflow-prone ops stay FP32, IO types unchanged, outputs close to FP32, bundles."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from tiny_models import tiny_model

from simokit.export.bundle import write_bundle
from simokit.export.fp16 import FP16_MAX, convert_fp16
from simokit.export.onnx import ExportSpec, example_input, export_onnx
from simokit.export.verify import FP16_TOLERANCE
from simokit.models import MultiTaskModel
from simokit.runtime.bundle import FP16_FILE, read_meta

TASKS = ("seg", "depth", "normal")
HALF, FLOAT = onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ExportSpec, MultiTaskModel]:
    model = tiny_model(seed=4)
    spec = ExportSpec(TASKS, 56, 56, input_kind="uint8")
    return export_onnx(model, spec, tmp_path_factory.mktemp("g") / "m.onnx"), spec, model


def _input_types(model: onnx.ModelProto) -> dict[str, list[int]]:
    """op name -> element types of its inputs, from shape inference."""
    inferred = onnx.shape_inference.infer_shapes(model).graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*inferred.input, *inferred.value_info]}
    types.update({t.name: t.data_type for t in inferred.initializer})
    return {n.name: [types.get(i, 0) for i in n.input if i] for n in inferred.node}


def test_layernorm_softmax_and_their_inputs_stay_fp32(graph: tuple[Path, ExportSpec, MultiTaskModel]) -> None:
    path, _, _ = graph
    half, report = convert_fp16(onnx.load(str(path)))
    types = _input_types(half)
    nodes = {n.name: n for n in half.graph.node}
    made_by = {o: n for n in half.graph.node for o in n.output}
    guarded = [n for n in half.graph.node if n.op_type in ("LayerNormalization", "Softmax")]
    assert len(guarded) == 2 * 2 + 1 + 2  # two blocks (2 LN + 1 Softmax each) + final norm
    for node in guarded:
        assert types[node.name][0] == FLOAT, node.name
        producer = made_by[node.input[0]]
        # the op computing the overflow-prone tensor runs in FP32 too (not a Cast from FP16)
        assert producer.op_type != "Cast" and FLOAT in types[producer.name], producer.name
    matmuls = [n for n in nodes.values() if n.op_type == "MatMul" and types[n.name] == [HALF, HALF]]
    assert len(matmuls) >= 4 and report.half_nodes > len(report.float_nodes)
    assert [i.type.tensor_type.elem_type for i in half.graph.input] == [onnx.TensorProto.UINT8]
    assert {o.type.tensor_type.elem_type for o in half.graph.output} == {FLOAT}


def test_fp16_outputs_close_to_fp32_and_weights_halve(graph: tuple[Path, ExportSpec, MultiTaskModel]) -> None:
    path, spec, _ = graph
    half, _ = convert_fp16(onnx.load(str(path)))
    x = example_input(spec, 3)
    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"image": x})
    session = ort.InferenceSession(half.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {"image": x})
    for r, g in zip(ref, got, strict=True):
        err = np.abs(r - g) / np.maximum(np.abs(r), 1.0)
        assert err.max() < FP16_TOLERANCE and err.max() > 0  # > 0: it really computed in half precision
    assert half.ByteSize() < 0.65 * onnx.load(str(path)).ByteSize()


def test_without_producers_the_residual_add_goes_half(graph: tuple[Path, ExportSpec, MultiTaskModel]) -> None:
    path, _, _ = graph
    _, report = convert_fp16(onnx.load(str(path)), keep_producers=False)
    kept = {n.split("|")[0] for n in report.float_nodes}
    assert "Add" not in kept and "LayerNormalization" in kept and "Softmax" in kept


def test_constants_beyond_fp16_range_are_clipped_and_reported() -> None:
    x = onnx.helper.make_tensor_value_info("x", FLOAT, [2])
    y = onnx.helper.make_tensor_value_info("y", FLOAT, [2])
    big = onnx.numpy_helper.from_array(np.array([1e6, -2.0], np.float32), "big")
    g = onnx.helper.make_graph([onnx.helper.make_node("Mul", ["x", "big"], ["y"])], "g", [x], [y], [big])
    model = onnx.helper.make_model(g, opset_imports=[onnx.helper.make_opsetid("", 17)])
    half, report = convert_fp16(model)
    assert report.clipped_constants == ["big"]
    (out,) = ort.InferenceSession(half.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": np.ones(2, np.float32)}
    )
    np.testing.assert_array_equal(out, [FP16_MAX, -2.0])


def test_bundle_with_fp16_and_dynamic_size(
    graph: tuple[Path, ExportSpec, MultiTaskModel], tmp_path: Path
) -> None:
    _, _, model = graph
    spec = ExportSpec(TASKS, 56, 56, input_kind="uint8", dynamic_hw=True, fp16=True)
    images = np.random.default_rng(0).integers(0, 256, (2, 56, 56, 3), dtype=np.uint8)
    out = write_bundle(tmp_path / "b", model, spec, images)
    meta = read_meta(out)
    assert meta.input.dynamic_hw and meta.outputs["depth"]["shape"] == ["B", 1, "H", "W"]
    checks = {(v["graph"], tuple(v["size"])) for v in meta.extra["verifications"]}
    assert checks == {("fp32", (56, 56)), ("fp32", (84, 70)), ("fp16", (56, 56)), ("fp16", (84, 70))}
    assert meta.extra["graphs"]["fp16"]["file"] == FP16_FILE and (out / FP16_FILE).is_file()
    assert all(o["ok"] for v in meta.extra["verifications"] for o in v["outputs"].values())
    assert "fp16 at 84x70" in (out / "report.md").read_text()
    json.dumps(meta.extra)  # JSON-safe


def test_runtime_runs_the_fp16_graph_on_request(
    graph: tuple[Path, ExportSpec, MultiTaskModel], tmp_path: Path
) -> None:
    from simokit.runtime import load

    _, _, model = graph
    spec = ExportSpec(TASKS, 56, 56, input_kind="uint8", fp16=True)
    frames = np.random.default_rng(1).integers(0, 256, (3, 56, 56, 3), dtype=np.uint8)
    out = write_bundle(tmp_path / "b", model, spec, frames)
    fp32, fp16 = load(out), load(out, precision="fp16")
    a, b = fp32.infer(frames), fp16.infer(frames)
    for task in TASKS:
        err = np.abs(a[task] - b[task]) / np.maximum(np.abs(a[task]), 1.0)
        assert 0 < err.max() < FP16_TOLERANCE, task

"""`simokit calib` on a frame-IO bundle: the graph's input check, the calibration inputs, the plan
that leaves frame IO's pre- and post-processing in float, and the INT8 graph at a frame's size."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from calib_helpers import SIZE, frames
from onnx import TensorProto
from onnx import helper as oh

from simokit.calib.frames import open_frames
from simokit.calib.graph import check_input, make_plan
from simokit.calib.readers import load_calib_set, prepare
from simokit.calib.trt_cache import calibration_profile
from simokit.cli import main
from simokit.runtime import load
from simokit.runtime.bundle import BundleError, GraphIO, read_meta


def test_check_input_takes_a_frame_graph_and_refuses_a_fixed_size(bundles: dict[str, Path]) -> None:
    meta = read_meta(bundles["frame"])
    model = onnx.load(str(bundles["frame"] / "model.onnx"))
    check_input(model, meta.input, "model.onnx")  # uint8 (batch, height, width, 3)
    with pytest.raises(BundleError, match=r"meta\.json says"):  # read as a model-size graph it does not fit
        check_input(model, meta.input.__class__(**{**vars(meta.input), "io": GraphIO.MODEL}), "model.onnx")
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = SIZE  # a frozen height
    with pytest.raises(BundleError, match=r"shape \['B', 56, 'W', 3\]"):
        check_input(model, meta.input, "model.onnx")


def test_calibration_inputs_are_area_resized_frames_in_the_graphs_channel_order(
    bundles: dict[str, Path], image_folder: Path
) -> None:
    meta = read_meta(bundles["frame"])
    rgb = frames(2, 70, 84, seed=3)
    x = prepare(meta, rgb)
    want = np.stack([cv2.resize(f, (SIZE, SIZE), interpolation=cv2.INTER_AREA)[..., ::-1] for f in rgb])
    assert x.dtype == np.uint8 and x.flags.c_contiguous and np.array_equal(x, want)
    calib = load_calib_set(open_frames(str(image_folder), 6), meta, 6, progress=False)
    assert calib.inputs.shape == (6, SIZE, SIZE, 3) and calib.inputs.dtype == np.uint8
    # TensorRT calibrates the frame graph (free H, W) on those model-size frames
    assert calibration_profile(calib.inputs.shape[1:], 4) == (
        [1, SIZE, SIZE, 3],
        [4, SIZE, SIZE, 3],
        [4, SIZE, SIZE, 3],
    )


def _graph_with_frame_nodes() -> onnx.ModelProto:
    """A model MatMul, a constant-weight MatMul named like frame IO's, and an If with a MatMul inside."""
    w = [oh.make_tensor(n, TensorProto.FLOAT, [4, 4], np.eye(4, dtype=np.float32).ravel()) for n in "abc"]
    inner = oh.make_graph(
        [oh.make_node("MatMul", ["f", "c"], ["t"], name="/model/blocks.0/branch/MatMul")],
        "then",
        [],
        [oh.make_tensor_value_info("t", TensorProto.FLOAT, [1, 4])],
    )
    other = oh.make_graph(
        [oh.make_node("Identity", ["f"], ["e"], name="frame/Identity")],
        "else",
        [],
        [oh.make_tensor_value_info("e", TensorProto.FLOAT, [1, 4])],
    )
    nodes = [
        oh.make_node("MatMul", ["x", "a"], ["h"], name="/model/blocks.0/fc/MatMul"),
        oh.make_node("MatMul", ["h", "b"], ["f"], name="frame/MatMul_3"),
        oh.make_node("If", ["cond"], ["y"], name="frame/If_4", then_branch=inner, else_branch=other),
    ]
    cond = oh.make_tensor("cond", TensorProto.BOOL, [], [True])
    graph = oh.make_graph(
        nodes,
        "g",
        [oh.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [oh.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [*w, cond],
    )
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 18)])


def test_plan_never_quantises_frame_io_nodes_or_if_subgraphs() -> None:
    model = _graph_with_frame_nodes()
    onnx.checker.check_model(model)
    plan = make_plan(model, keep_heads=False)
    assert plan.quantize == ["/model/blocks.0/fc/MatMul"] and plan.kept_float == {}
    assert plan.blocks == {"blocks.0": ["/model/blocks.0/fc/MatMul"]}


def test_calib_on_a_frame_bundle_end_to_end(
    bundles: dict[str, Path],
    image_folder: Path,
    nyu_folder: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bundle = Path(shutil.copytree(bundles["frame"], tmp_path / "frame"))
    argv = ["calib", str(bundle), "--data", str(image_folder), "--n", "8", "--method", "minmax"]
    assert main([*argv, "--eval", str(nyu_folder), "-q"]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "| INT8 | model.int8.onnx |" in captured.out
    record = json.loads((bundle / "meta.json").read_text())["int8"]
    assert record["quantized_nodes"] == 9 and record["qdq"]["activation_dtypes"] == ["int8"]
    assert set(record["report"]["INT8"]["drops"]) == {"seg", "depth", "normal"}
    assert all(np.isfinite(d) for d in record["report"]["INT8"]["drops"].values())

    fp32_graph, int8_graph = (onnx.load(str(bundle / f)) for f in ("model.onnx", "model.int8.onnx"))
    frame_nodes = {(n.name, n.op_type) for n in fp32_graph.graph.node if n.name.startswith("frame/")}
    assert frame_nodes == {(n.name, n.op_type) for n in int8_graph.graph.node if n.name.startswith("frame/")}
    dequantised = {o for n in int8_graph.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    fed = [n.name for n in int8_graph.graph.node if n.name.startswith("frame/") and dequantised & {*n.input}]
    assert len(dequantised) > 0 and fed == []

    bgr = np.ascontiguousarray(frames(2, 70, 98, seed=4)[..., ::-1])  # not the model's 56 x 56
    names = ("seg", "depth", "normal")
    ref, out = (
        dict(zip(names, ort.InferenceSession(str(bundle / f)).run(None, {"image": bgr}), strict=True))
        for f in ("model.onnx", "model.int8.onnx")
    )
    assert out["seg"].dtype == np.uint8 and out["seg"].shape == (2, 70, 98)
    assert (out["seg"] == ref["seg"]).mean() >= 0.95  # measured 0.99
    assert out["depth"].shape == (2, 1, 70, 98)
    assert 0 < np.max(np.abs(out["depth"] - ref["depth"]) / ref["depth"]) < 0.1  # measured 0.014
    assert np.abs(np.linalg.norm(out["normal"], axis=1) - 1).max() < 1e-3
    assert (out["normal"] * ref["normal"]).sum(axis=1).min() > 0.99  # measured 0.9999
    # the runtime runs the Q/DQ frame graph on frames of any size, as it does the FP32 one
    engine = load(bundle, precision="int8-qdq")
    assert np.array_equal(engine.infer(bgr)["seg"], out["seg"])


def test_entropy_calibration_skips_the_frame_graphs_near_constant_tensors(
    bundles: dict[str, Path], image_folder: Path, tmp_path: Path
) -> None:
    """The normals' squared norms (1 +- 2e-7) broke ORT's 2048-bin histograms with a ValueError."""
    bundle = Path(shutil.copytree(bundles["frame"], tmp_path / "frame"))
    assert main(["calib", str(bundle), "--data", str(image_folder), "--n", "4", "-q"]) == 0
    assert (bundle / "model.int8.onnx").is_file()

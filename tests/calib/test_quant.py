"""The Q/DQ graph: what is quantised and how, what stays float, and that ORT runs it close to FP32."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from calib_helpers import frames
from onnx import numpy_helper

from simokit.calib.graph import QuantPlan, block_of, make_plan
from simokit.calib.graph_eval import graph_engine
from simokit.calib.ort_quant import preprocess, qdq_summary, quantize_qdq
from simokit.calib.readers import CalibSet, OrtCalibReader
from simokit.errors import ConfigError
from simokit.runtime.bundle import read_meta


@pytest.fixture(scope="module")
def quantised(bundles: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    work = tmp_path_factory.mktemp("q")
    bundle = bundles["uint8"]
    pre = work / "pre.onnx"
    preprocess(bundle / "model.onnx", pre)
    model = onnx.load(str(pre))
    plan = make_plan(model)
    data = CalibSet(frames(16, seed=2), "image", "test frames", tuple(range(16)), "0")
    cache = work / "ranges.json"
    out = quantize_qdq(pre, work / "int8.onnx", plan, "percentile", cache, OrtCalibReader(data, 4))
    return {"bundle": bundle, "pre": pre, "plan": plan, "int8": out, "cache": cache, "fp32": model}


def test_plan_quantises_weighted_layers_and_keeps_head_outputs_float(quantised: dict[str, object]) -> None:
    plan = quantised["plan"]
    assert isinstance(plan, QuantPlan)
    # nano ViT: patch embedding + 2 blocks x (qkv, proj, fc1, fc2); the 3 heads' 1x1 convs stay float
    assert len(plan.quantize) == 9
    assert sorted(plan.blocks) == ["blocks.0", "blocks.1", "patch_embed"]
    assert sorted(plan.kept_float.values()) == [
        "output layer of 'depth'",
        "output layer of 'normal'",
        "output layer of 'seg'",
    ]
    assert not any("attn/MatMul" in n for n in plan.quantize)  # q·k and attention·v stay float


def test_qdq_graph_is_symmetric_int8_per_channel_and_keeps_float_ops(quantised: dict[str, object]) -> None:
    int8 = quantised["int8"]
    assert isinstance(int8, Path)
    facts = qdq_summary(int8)
    plan = quantised["plan"]
    assert isinstance(plan, QuantPlan)
    assert sorted(facts["quantized_nodes"]) == sorted(plan.quantize)  # type: ignore[call-overload]
    assert facts["activation_dtypes"] == ["int8"] and facts["max_abs_zero_point"] == 0
    assert facts["domains"] == [""]  # standard ONNX ops only, as TensorRT's parser needs
    fp32 = quantised["fp32"]
    counts = Counter(n.op_type for n in fp32.graph.node)  # type: ignore[attr-defined]
    float_ops = {"LayerNormalization": counts["LayerNormalization"], "Softmax": counts["Softmax"]}
    assert facts["float_ops"] == float_ops and float_ops["Softmax"] == 2
    model = onnx.load(str(int8))
    inits = {t.name: t for t in model.graph.initializer}
    dq_out = {n.output[0]: n for n in model.graph.node if n.op_type == "DequantizeLinear"}
    for node in model.graph.node:
        if node.name in plan.kept_float:  # head output convs read float weights directly
            assert node.input[1] in inits and inits[node.input[1]].data_type == onnx.TensorProto.FLOAT
        if node.name.endswith("fc1/MatMul"):
            dq = dq_out[node.input[1]]
            scale = numpy_helper.to_array(inits[dq.input[1]])
            weight = numpy_helper.to_array(inits[dq.input[0]])
            axis = next(a.i for a in dq.attribute if a.name == "axis")
            assert weight.dtype == np.int8 and axis == 1 and scale.shape == (weight.shape[1],)
            assert not np.any(numpy_helper.to_array(inits[dq.input[2]]))  # weight zero points are 0
    # no Q/DQ on any weighted layer's output: only the pre-processing Cast feeds the first Q
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    q_inputs = {producers.get(n.input[0]) for n in model.graph.node if n.op_type == "QuantizeLinear"}
    assert not q_inputs & {"MatMul", "Conv", "Gemm"}


def test_int8_graph_runs_on_ort_close_to_fp32(quantised: dict[str, object]) -> None:
    bundle = quantised["bundle"]
    assert isinstance(bundle, Path)
    meta = read_meta(bundle)
    rgb = frames(4, seed=9)
    ref = graph_engine(meta, bundle / "model.onnx").infer(rgb, bgr=False)
    got = graph_engine(meta, quantised["int8"]).infer(rgb, bgr=False)  # type: ignore[arg-type]
    rel = np.abs(got["depth"] - ref["depth"]) / ref["depth"]
    assert 0 < rel.mean() < 0.05  # quantised (not bit-equal) yet close
    cos = (got["normal"] * ref["normal"]).sum(axis=1)
    assert cos.mean() > 0.98
    agree = (got["seg"].argmax(1) == ref["seg"].argmax(1)).mean()
    assert agree > 0.8


def test_reuses_the_calibration_cache_and_honours_exclusions(
    quantised: dict[str, object], tmp_path: Path
) -> None:
    pre, cache = quantised["pre"], quantised["cache"]
    assert isinstance(pre, Path) and isinstance(cache, Path)
    model = onnx.load(str(pre))
    plan = make_plan(model, exclude=["blocks.1", "Conv"])
    assert all(block_of(n) == "blocks.0" for n in plan.quantize) and len(plan.quantize) == 4
    assert plan.kept_float["/model/patch_embed/proj/Conv"] == "--exclude Conv"
    out = quantize_qdq(pre, tmp_path / "b0.onnx", plan, "percentile", cache)  # no data: the cache is used
    assert sorted(qdq_summary(out)["quantized_nodes"]) == sorted(plan.quantize)  # type: ignore[call-overload]
    only = make_plan(model).only("patch_embed")
    assert only.quantize == ["/model/patch_embed/proj/Conv"] and list(only.blocks) == ["patch_embed"]
    with pytest.raises(ConfigError, match=r"--exclude blocks\.9 matches no weighted node; use a block"):
        make_plan(model, exclude=["blocks.9"])
    with pytest.raises(ConfigError, match="nothing left to quantise"):
        make_plan(model, exclude=["*"])
    with pytest.raises(ConfigError, match="calibration data or an existing calibration cache"):
        quantize_qdq(pre, tmp_path / "x.onnx", plan, "minmax", tmp_path / "missing.json")

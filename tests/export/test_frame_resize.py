"""The in-graph INTER_AREA resize against OpenCV, and the frame graph's types (what TensorRT parses)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto
from onnx import helper as oh

from simokit.export.frame_resize import area_resize_nodes
from simokit.export.graph_nodes import NodeBuilder

cv2 = pytest.importorskip("cv2")
ort = pytest.importorskip("onnxruntime")


def _resize_session(size: tuple[int, int], flip: bool = False):  # type: ignore[no-untyped-def]
    b = NodeBuilder("f")
    b.op("Identity", [area_resize_nodes(b, "image", size, flip)], "out")
    graph = oh.make_graph(
        b.nodes,
        "resize",
        [oh.make_tensor_value_info("image", TensorProto.UINT8, ["b", "h", "w", 3])],
        [oh.make_tensor_value_info("out", TensorProto.FLOAT, ["b", "mh", "mw", 3])],
        b.initializers,
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _textured(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 6 + 2, w // 6 + 2, 3), np.uint8)
    smooth = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    return np.clip(smooth + rng.integers(-20, 21, (h, w, 3)), 0, 255).astype(np.uint8)


# (frame size, model size, most pixels allowed one grey level off): integer factors (OpenCV's fast
# path, half-up rounding at 2x), the identity, and OpenCV's fixed-point path (an axis grows) are
# exact; other scales differ only where a cell's mean is within float rounding of a .5 tie.
CASES = [
    ((112, 112), (112, 112), 0),
    ((224, 224), (112, 112), 0),
    ((448, 336), (112, 112), 0),
    ((480, 640), (112, 112), 2e-3),
    ((721, 1283), (224, 224), 2e-3),
    ((60, 150), (112, 112), 0),
    ((100, 90), (112, 112), 0),
]


@pytest.mark.parametrize(("frame", "size", "off"), CASES)
def test_area_resize_equals_opencv(frame: tuple[int, int], size: tuple[int, int], off: float) -> None:
    image = _textured(*frame, seed=frame[0])
    got = _resize_session(size).run(None, {"image": np.stack([image, image[::-1]])})[0]
    for i, src in enumerate((image, image[::-1])):
        ref = cv2.resize(np.ascontiguousarray(src), (size[1], size[0]), interpolation=cv2.INTER_AREA)
        diff = np.abs(got[i] - ref)
        assert got[i].shape == (*size, 3) and np.all(got[i] == np.round(got[i]))
        assert diff.max() <= (1 if off else 0) and (diff > 0).mean() <= off


@pytest.mark.parametrize("frame", [(480, 640), (60, 150)])  # the box path and the fixed-point path
def test_flip_reverses_the_channels_of_the_same_resize(frame: tuple[int, int]) -> None:
    image = _textured(*frame, seed=1)[None]
    plain = _resize_session((112, 112)).run(None, {"image": image})[0]
    flipped = _resize_session((112, 112), flip=True).run(None, {"image": image})[0]
    np.testing.assert_array_equal(flipped, plain[..., ::-1])


def test_frame_graph_keeps_uint8_at_its_edges_and_float64_in_index_vectors(tmp_path: Path) -> None:
    """TensorRT takes uint8 only as a network input or output and runs float64 as float32."""
    from tiny_models import tiny_model

    from simokit.export.bundle import write_bundle
    from simokit.export.onnx import ExportSpec

    spec = ExportSpec(("seg", "depth", "normal"), 56, 56, input_kind="uint8", io="frame", seg_output="labels")
    frames = np.random.default_rng(0).integers(0, 256, (2, 56, 56, 3), np.uint8)
    out = write_bundle(tmp_path / "b", tiny_model(seed=1), spec, frames)
    model = onnx.shape_inference.infer_shapes(onnx.load(str(out / "model.onnx")))
    types = {v.name: v.type.tensor_type for v in [*model.graph.value_info, *model.graph.input]}
    nodes = list(model.graph.node)
    for node in model.graph.node:  # the If's branches (the resize) too
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                nodes.extend(attr.g.node)
                types.update({v.name: v.type.tensor_type for v in attr.g.value_info})
    uint8_readers = {
        n.op_type for n in nodes for i in n.input if i in types and types[i].elem_type == TensorProto.UINT8
    }
    assert uint8_readers <= {"Cast", "Shape"}
    doubles = [t for t in types.values() if t.elem_type == TensorProto.DOUBLE]
    assert doubles and all(len(t.shape.dim) <= 1 for t in doubles)  # label index maths only
    (seg,) = [o for o in model.graph.output if o.name == "seg"]
    assert seg.type.tensor_type.elem_type == TensorProto.UINT8
    frame_nodes = [n for n in nodes if n.name.startswith("frame/")]
    assert {n.op_type for n in frame_nodes} <= TENSORRT_10_OPS
    # TensorRT wants these axes as initializers (build-time constants)
    weights = {t.name for t in model.graph.initializer} | {
        t.name
        for n in model.graph.node
        for a in n.attribute
        if a.type == onnx.AttributeProto.GRAPH
        for t in a.g.initializer
    }
    axes_at = {"CumSum": 1, "Slice": 3, "ReduceSum": 1, "ReduceMin": 1, "Unsqueeze": 1}
    for n in frame_nodes:
        if n.op_type in axes_at and len(n.input) > axes_at[n.op_type]:
            assert n.input[axes_at[n.op_type]] in weights, n.name


# ONNX operators the frame graph may use: each listed as supported, with the types used here, in
# onnx-tensorrt's operator matrix for TensorRT 10.0 (docs/operators.md)
TENSORRT_10_OPS = {
    "Add", "ArgMax", "Cast", "Clip", "Concat", "CumSum", "Div", "Equal", "Floor", "Gather",
    "GreaterOrEqual", "Identity", "If", "LessOrEqual", "MatMul", "Max", "Min", "Mul", "Or", "Range",
    "Reciprocal", "ReduceMin", "ReduceSum", "Reshape", "Resize", "Round", "Shape", "Slice", "Sqrt",
    "Sub", "Transpose", "Unsqueeze", "Where",
}  # fmt: skip

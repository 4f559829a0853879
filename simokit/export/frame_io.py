"""Frame IO: wrap a model-size graph so it takes camera frames and returns outputs at their size.

The model-size graph (uint8 (B, h, w, 3) RGB in, seg logits / depth / normals at h x w out) gets
a new input, uint8 (B, H, W, 3) in the camera's channel order at any H and W, and new outputs:

- in front: INTER_AREA resampling to h x w with the channel flip (export.frame_resize);
- behind, per task by the task table's output kind and resize rule: class scores become labels
  (ArgMax at model size, then nearest upsampling of the labels), linear outputs are resized
  linearly (half-pixel centres, as OpenCV's INTER_LINEAR), unit vectors are renormalised after.

The output size is the frame's ("input"), the model's ("model") or a fixed "HxW". Logits, when
asked for, stay at model size. Every op added here is FP32 or integer (FP64 only in the label
upsampling's index vectors), so an FP16 model-size graph wrapped by it keeps its pre- and
post-processing in FP32, and uint8 appears only at the graph's input and label outputs, the one
place TensorRT takes it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import ModelProto, NodeProto, TensorProto, ValueInfoProto
from onnx import helper as oh

from simokit.errors import ConfigError
from simokit.export.frame_resize import area_resize_nodes
from simokit.export.graph_nodes import NodeBuilder
from simokit.runtime.bundle import FRAME_SCOPE
from simokit.tasks.spec import OutputKind, Resize, get_task, output_kind, resize_rule

FRAME_OPSET = 18  # Resize's `axes` attribute (resize H and W of NHWC / (B, H, W) tensors in place)
OUTPUT_SIZES = ("input", "model")  # or "HxW"
LABEL_DTYPES = {"uint8": TensorProto.UINT8, "int32": TensorProto.INT32}


def parse_output_size(text: str) -> tuple[int, int] | str:
    """'input', 'model' or 'HxW' -> the keyword or (H, W); anything else raises ConfigError."""
    if text in OUTPUT_SIZES:
        return text
    parts = text.lower().split("x")
    if len(parts) == 2 and all(p.isdigit() and int(p) > 0 for p in parts):
        return int(parts[0]), int(parts[1])
    raise ConfigError(f"output size '{text}' is not one of {', '.join(OUTPUT_SIZES)} or HxW (e.g. 480x640)")


def label_dtype(classes: int) -> str:
    """uint8 labels up to 256 classes (a quarter of int32's bytes at the frame's size: 24 MB instead
    of 96 MB at 24 MP), int32 beyond; meta.json records the dtype, so readers take either."""
    return "uint8" if classes <= 256 else "int32"


def wrap_frame_io(
    core: ModelProto,
    tasks: tuple[str, ...],
    size: tuple[int, int],
    seg_output: str,
    output_size: str,
    classes: dict[str, int],
    bgr: bool = True,
) -> ModelProto:
    """The frame-IO graph around `core` (input "image" uint8 NHWC RGB at `size`, one output per task)."""
    _frame_input(core, size, bgr)
    graph = core.graph
    b = NodeBuilder(f"{FRAME_SCOPE}out")
    target = _target_size(b, graph.input[0].name, output_size, size)
    outputs = []
    for task in tasks:
        raw = f"{task}/model_size"
        for node in graph.node:
            node.output[:] = [raw if n == task else n for n in node.output]
        outputs.append(_post(b, task, raw, seg_output, target, classes.get(task, 0)))
    del graph.output[:]
    graph.output.extend(outputs)
    graph.node.extend(b.nodes)
    graph.initializer.extend(b.initializers)
    onnx.checker.check_model(core)
    return core


def wrap_frame_input(core: ModelProto, size: tuple[int, int], bgr: bool = True) -> ModelProto:
    """`core` (one uint8 NHWC RGB input at `size`) taking uint8 frames of any size instead, in place.

    The input keeps its name; the frames are resized to `size` as cv2.INTER_AREA does and, with
    `bgr`, flipped to RGB after the resize (on the small image). Outputs are unchanged: a graph whose
    outputs are not images (the router's features) needs nothing more.
    """
    _frame_input(core, size, bgr)
    onnx.checker.check_model(core)
    return core


def _frame_input(core: ModelProto, size: tuple[int, int], bgr: bool) -> None:
    """wrap_frame_input's graph surgery, without the final check (callers check the finished graph)."""
    graph = core.graph
    if any(e.version < FRAME_OPSET for e in core.opset_import if e.domain in ("", "ai.onnx")):
        raise ConfigError(f"frame input needs the model-size graph at opset >= {FRAME_OPSET}")
    weights = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in weights]
    if len(inputs) != 1 or inputs[0].type.tensor_type.elem_type != TensorProto.UINT8:
        names = ", ".join(i.name for i in inputs)
        raise ConfigError(f"frame input wraps a graph with one uint8 NHWC input; this one has: {names}")
    frame = inputs[0].name
    inner = f"{frame}/model_size"
    for node in graph.node:
        node.input[:] = [inner if n == frame else n for n in node.input]
    _accept_float_input(graph.node, inner)
    b = NodeBuilder(f"{FRAME_SCOPE}in")
    # float32 grey levels (uint8 stays at the graph's edge), flipped to RGB on the model-size image
    b.op("Identity", [area_resize_nodes(b, frame, size, flip=bgr)], inner)
    del graph.input[:]
    graph.input.append(oh.make_tensor_value_info(frame, TensorProto.UINT8, ["batch", "height", "width", 3]))
    nodes = [*b.nodes, *graph.node]
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(b.initializers)


def _target_size(b: NodeBuilder, frame: str, output_size: str, size: tuple[int, int]) -> str | None:
    """The (2,) int64 output size, or None for outputs left at the model's size."""
    parsed = parse_output_size(output_size)
    if parsed == "model" or parsed == size:
        return None
    if isinstance(parsed, tuple):
        return b.const_i64(list(parsed))
    return b.op("Slice", [b.op("Shape", [frame]), b.const_i64([1]), b.const_i64([3])])


def _post(
    b: NodeBuilder, task: str, raw: str, seg_output: str, target: str | None, classes: int
) -> ValueInfoProto:
    """Nodes from a model-size output to the task's graph output; returns its ValueInfo."""
    kind = output_kind(task, seg_output)
    hw = ["batch", "out_height", "out_width"] if target is not None else ["batch", "model_h", "model_w"]
    if kind is OutputKind.LABELS:
        dtype = LABEL_DTYPES[label_dtype(classes)]
        # gathered as int32 and narrowed last: TensorRT takes uint8 only at the graph's edges
        labels = b.op("Cast", [b.op("ArgMax", [raw], axis=1, keepdims=0)], to=TensorProto.INT32)
        b.op("Cast", [_nearest(b, labels, target)], task, to=dtype)
        return oh.make_tensor_value_info(task, dtype, hw)
    rule = resize_rule(task)
    channels = get_task(task).out_channels
    shape: list[str | int] = [hw[0], channels, *hw[1:]]
    if kind is OutputKind.LOGITS:  # logits stay at model size: upsampling 150 planes is the cost to avoid
        b.op("Identity", [raw], task)
        return oh.make_tensor_value_info(task, TensorProto.FLOAT, ["batch", channels, "model_h", "model_w"])
    if rule is Resize.LINEAR_UNIT and target is not None:
        up = _resize(b, raw, target, None)
        b.op("Div", [up, b.op("Max", [_channel_norm(b, up, channels), b.const_f32(1e-6)])], task)
    else:
        _resize(b, raw, target, task)
    return oh.make_tensor_value_info(task, TensorProto.FLOAT, shape)


def _channel_norm(b: NodeBuilder, x: str, channels: int) -> str:
    """(B, C, H, W) -> (B, 1, H, W) Euclidean norm over C.

    The sum of squares is a (1, C) x (C, H*W) MatMul: ONNX Runtime's ReduceL2 over the channel
    axis of a 720p map takes ~4 ms on two cores, the MatMul ~0.5 ms.
    """
    shape = b.op("Shape", [x])
    flat = b.op("Reshape", [b.op("Mul", [x, x]), b.const_i64([0, channels, -1])])
    total = b.op("MatMul", [b.const(np.ones((1, channels), np.float32)), flat])
    spatial = b.op("Slice", [shape, b.const_i64([2]), b.const_i64([4])])
    out_shape = b.op("Concat", [b.const_i64([0, 1]), spatial], axis=0)  # 0: the batch as it is
    return b.op("Sqrt", [b.op("Reshape", [total, out_shape])])


def _resize(b: NodeBuilder, x: str, target: str | None, out: str | None) -> str:
    """Resize H and W of (B, C, h, w) `x` to `target` as the runtime's OpenCV path does (or pass it through).

    The sizes are given for all four axes: TensorRT's Resize takes `axes` only as the full iota.
    """
    if target is None:
        return b.op("Identity", [x], out)
    lead = b.op("Slice", [b.op("Shape", [x]), b.const_i64([0]), b.const_i64([2])])
    sizes = b.op("Concat", [lead, target], axis=0)
    # OpenCV INTER_LINEAR: half-pixel centres, clamped at the border, no antialiasing
    attrs = {"mode": "linear", "coordinate_transformation_mode": "half_pixel"}
    return b.op("Resize", [x, "", "", sizes], out, **attrs)


def _nearest(b: NodeBuilder, labels: str, target: str | None) -> str:
    """(B, h, w) labels -> (B, H, W) by OpenCV's INTER_NEAREST rule, source = floor(dst * (1 / (H / h))).

    Written as Gathers with the indices computed in float64 as OpenCV does: ONNX Resize divides by
    a float32 scale instead, which picks the neighbouring row at exact multiples (0.3% of pixels at
    56 -> 100). TensorRT casts this float64 down to float32, with that same effect. Both Gathers
    take whole rows (columns after a transpose of the model-size map): ONNX Runtime copies rows
    ~6x faster than it gathers single elements.
    """
    if target is None:
        return labels
    shape = b.op("Shape", [labels])
    cols = b.op(
        "Gather", [b.op("Transpose", [labels], perm=[0, 2, 1]), _nearest_index(b, target, shape, 2)], axis=1
    )
    rows = b.op("Transpose", [cols], perm=[0, 2, 1])  # (B, h, W)
    return b.op("Gather", [rows, _nearest_index(b, target, shape, 1)], axis=1)


def _nearest_index(b: NodeBuilder, target: str, shape: str, axis: int) -> str:
    """Source index per output position along `axis` (1: rows, 2: columns), as OpenCV computes it."""
    dst = b.op("Gather", [target, b.const_i64(axis - 1)], axis=0)
    src = b.op("Cast", [b.op("Gather", [shape, b.const_i64(axis)], axis=0)], to=TensorProto.DOUBLE)
    steps = b.op("Cast", [b.op("Range", [b.const_i64(0), dst, b.const_i64(1)])], to=TensorProto.DOUBLE)
    # Reciprocal, not Div(1, r): ONNX Runtime fuses Div(1, r) -> Mul into one Div, which rounds
    # differently from OpenCV's x * (1 / r) at exact multiples
    inv = b.op("Reciprocal", [b.op("Div", [b.op("Cast", [dst], to=TensorProto.DOUBLE), src])])
    return b.op("Cast", [b.op("Floor", [b.op("Mul", [steps, inv])])], to=TensorProto.INT64)


def _accept_float_input(nodes: Sequence[NodeProto], name: str) -> None:
    """Check the model-size graph only casts its uint8 input, so the resized float32 image can feed it.

    The export's input adapter starts with Cast(image -> float32); a float32 image through it is the
    same values, without the uint8 tensor TensorRT would refuse inside the graph.
    """
    for node in nodes:
        if name in node.input and node.op_type not in ("Cast", "Shape"):
            raise ConfigError(f"frame IO: the model-size graph's input feeds a {node.op_type}, not a Cast")

"""Frame input for graphs whose outputs are not images: the router's feature graph of a frame-IO bundle.

A frame-IO engine takes uint8 (B, H, W, 3) camera frames of any size and resizes them itself
(export.frame_io). The router runs on the same frames, so its graph gets the same front: INTER_AREA
resampling to the model's size (export.frame_resize) and the channel flip, in front of the
model-size input. Its outputs (features, not images) are left as they are.
"""

from __future__ import annotations

import onnx
from onnx import ModelProto, TensorProto
from onnx import helper as oh

from simokit.errors import ConfigError
from simokit.export.frame_io import FRAME_OPSET, add_frame_front
from simokit.export.graph_nodes import NodeBuilder


def wrap_frame_input(core: ModelProto, size: tuple[int, int], bgr: bool = True) -> ModelProto:
    """`core` (one uint8 NHWC RGB input at `size`) taking uint8 frames of any size instead, in place.

    The input keeps its name; the frames are resized to `size` as cv2.INTER_AREA does and, with
    `bgr`, flipped to RGB after the resize (on the small image). Outputs are unchanged.
    """
    graph = core.graph
    if any(e.version < FRAME_OPSET for e in core.opset_import if e.domain in ("", "ai.onnx")):
        raise ConfigError(f"frame input needs the model-size graph at opset >= {FRAME_OPSET}")
    weights = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in weights]
    if len(inputs) != 1 or inputs[0].type.tensor_type.elem_type != TensorProto.UINT8:
        names = ", ".join(i.name for i in inputs)
        raise ConfigError(f"frame input wraps a graph with one uint8 NHWC input; this one has: {names}")
    frame = inputs[0].name
    b = NodeBuilder("frame")
    add_frame_front(b, graph.node, frame, size, bgr)
    del graph.input[:]
    graph.input.append(oh.make_tensor_value_info(frame, TensorProto.UINT8, ["batch", "height", "width", 3]))
    nodes = [*b.nodes, *graph.node]
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(b.initializers)
    onnx.checker.check_model(core)
    return core

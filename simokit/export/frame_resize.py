"""OpenCV's INTER_AREA resize of uint8 frames as ONNX nodes, so the frame is resized inside the graph.

ONNX Resize has no area mode, and its antialiased linear mode (a triangle filter) differs from
INTER_AREA (a box filter) by ~9 grey levels on average on textured 720p frames, enough to move
every output of the network. OpenCV's two paths are written out instead, chosen per frame by an If:

- frame at least the model's size on both axes: the box filter. Output pixel i of an axis of
  length n resized to m covers [i*s, (i+1)*s) with s = n/m; every source pixel contributes its
  overlap with that interval, divided by s. Each output gathers the K = ceil(s) + 1 source pixels
  it can touch, so the work is linear in the frame's pixels. Sums run in float32 with float64
  weights and are rounded half to even, as OpenCV's saturate_cast does; the two differ only at
  rounding ties (1 pixel of 18816 one grey level off in the tests' 480x640 frames).
- any axis smaller: OpenCV's area-weighted bilinear in 11-bit fixed point, integer for integer,
  including the vectorised path's intermediate shifts.

Index and weight arithmetic runs in float64 so positions in a 6000-pixel row stay exact.
"""

from __future__ import annotations

from onnx import TensorProto
from onnx import helper as oh

from simokit.export.graph_nodes import NodeBuilder

COEF_SCALE = 2048  # OpenCV's INTER_RESIZE_COEF_SCALE (11 bits)


def area_resize_nodes(b: NodeBuilder, image: str, size: tuple[int, int]) -> str:
    """uint8 (B, H, W, 3) `image` -> uint8 (B, size[0], size[1], 3) as cv2.INTER_AREA; returns its name."""
    shape = b.op("Shape", [image])
    hw = b.op("Slice", [shape, b.const_i64([1]), b.const_i64([3])])
    shrink = b.op("ReduceMin", [b.op("Cast", [b.op("GreaterOrEqual", [hw, b.const_i64(list(size))])],
                                     to=TensorProto.INT32)], keepdims=0)  # fmt: skip
    cond = b.op("Cast", [shrink], to=TensorProto.BOOL)
    branches = {}
    for name, build in (("box", _box), ("fixed_point", _fixed_point)):
        sub = NodeBuilder(f"{b.prefix}/{name}")
        out = build(sub, image, shape, size)
        vi = oh.make_tensor_value_info(out, TensorProto.UINT8, None)
        branches[name] = oh.make_graph(sub.nodes, name, [], [vi], sub.initializers)
    return b.op("If", [cond], then_branch=branches["box"], else_branch=branches["fixed_point"])


def _box(b: NodeBuilder, image: str, shape: str, size: tuple[int, int]) -> str:
    """OpenCV's area path (frame at least the model's size): the exact box filter, rounded."""
    x = image
    for axis, length in ((2, size[1]), (1, size[0])):  # width first: the row pass shrinks most
        n = b.op("Cast", [b.op("Gather", [shape, b.const_i64([axis])], axis=0)], to=TensorProto.DOUBLE)
        idx, weights = _axis_taps(b, n, length)
        taps = b.op("Gather", [x, idx], axis=axis)  # (.., m, K, ..) at `axis`
        if x == image:
            taps = b.op("Cast", [taps], to=TensorProto.FLOAT)
        w = b.op("Unsqueeze", [weights, b.const_i64([2] if axis == 2 else [2, 3])])
        x = b.op("ReduceSum", [b.op("Mul", [taps, w]), b.const_i64([axis + 1])], keepdims=0)
    rounded = b.op("Clip", [b.op("Round", [x]), b.const_f32(0.0), b.const_f32(255.0)])
    return b.op("Cast", [rounded], to=TensorProto.UINT8)


def _fixed_point(b: NodeBuilder, image: str, shape: str, size: tuple[int, int]) -> str:
    """OpenCV's path when an axis grows: area-mode bilinear taps, 11-bit coefficients, integer sums."""
    taps = {}
    for axis, length in ((2, size[1]), (1, size[0])):
        n = b.op("Cast", [b.op("Gather", [shape, b.const_i64([axis])], axis=0)], to=TensorProto.DOUBLE)
        taps[axis] = _linear_taps(b, n, length)
    idx, coef = taps[2]
    row = b.op("Cast", [b.op("Gather", [image, idx], axis=2)], to=TensorProto.INT32)  # (B, H, w, 2, 3)
    row = b.op("Mul", [row, b.op("Unsqueeze", [coef, b.const_i64([2])])])
    buf = b.op("ReduceSum", [row, b.const_i64([3])], keepdims=0)  # (B, H, w, 3), scale 2048
    idx, coef = taps[1]
    col = b.op("Div", [b.op("Gather", [buf, idx], axis=1), b.const_i32(16)])  # (B, h, 2, w, 3)
    col = b.op(
        "Div", [b.op("Mul", [col, b.op("Unsqueeze", [coef, b.const_i64([2, 3])])]), b.const_i32(65536)]
    )
    total = b.op("Add", [b.op("ReduceSum", [col, b.const_i64([2])], keepdims=0), b.const_i32(2)])
    return b.op("Cast", [b.op("Div", [total, b.const_i32(4)])], to=TensorProto.UINT8)


def _linear_taps(b: NodeBuilder, n: str, m: int) -> tuple[str, str]:
    """Indices (m, 2) int64 and 11-bit coefficients (m, 2) int32 of OpenCV's area-mode bilinear."""
    inv = b.op("Div", [b.const_f64(float(m)), n])  # OpenCV's inv_scale
    dx = b.const_f64_range(m)
    sx = b.op("Floor", [b.op("Mul", [dx, b.op("Div", [n, b.const_f64(float(m))])])])
    fx = b.op("Sub", [b.op("Add", [dx, b.const_f64(1.0)]),
                      b.op("Mul", [b.op("Add", [sx, b.const_f64(1.0)]), inv])])  # fmt: skip
    fx = b.op("Cast", [fx], to=TensorProto.FLOAT)
    frac = b.op("Sub", [fx, b.op("Floor", [fx])])
    zero = b.const_f32(0.0)
    last = b.op("Sub", [n, b.const_f64(1.0)])
    at_edge = b.op("GreaterOrEqual", [sx, last])
    fx = b.op("Where", [b.op("Or", [b.op("LessOrEqual", [fx, zero]), at_edge]), zero, frac])
    sx = b.op("Min", [sx, last])
    nxt = b.op("Min", [b.op("Add", [sx, b.const_f64(1.0)]), last])
    idx = b.op("Cast", [b.op("Concat", [sx, nxt], axis=1)], to=TensorProto.INT64)
    weights = b.op("Concat", [b.op("Sub", [b.const_f32(1.0), fx]), fx], axis=1)
    scaled = b.op("Round", [b.op("Mul", [weights, b.const_f32(float(COEF_SCALE))])])
    return idx, b.op("Cast", [scaled], to=TensorProto.INT32)


def _axis_taps(b: NodeBuilder, n: str, m: int) -> tuple[str, str]:
    """Source indices (m, K) int64 and weights (m, K) float32 of an axis of length `n` resized to `m`."""
    s = b.op("Div", [n, b.const_f64(float(m))])  # source pixels per output pixel
    taps = b.op("Cast", [b.op("Add", [b.op("Ceil", [s]), b.const_f64(1.0)])], to=TensorProto.INT64)
    k = b.op("Cast", [b.op("Range", [b.const_i64(0), b.op("Squeeze", [taps]),
                                     b.const_i64(1)])], to=TensorProto.DOUBLE)  # fmt: skip
    i = b.const_f64_range(m)  # (m, 1)
    lo = b.op("Mul", [i, s])
    hi = b.op("Mul", [b.op("Add", [i, b.const_f64(1.0)]), s])
    j = b.op("Add", [b.op("Floor", [lo]), b.op("Unsqueeze", [k, b.const_i64([0])])])  # (m, K)
    overlap = b.op("Sub", [b.op("Min", [b.op("Add", [j, b.const_f64(1.0)]), hi]), b.op("Max", [j, lo])])
    weight = b.op("Div", [b.op("Max", [overlap, b.const_f64(0.0)]), s])
    last = b.op("Sub", [n, b.const_f64(1.0)])
    index = b.op("Cast", [b.op("Min", [j, last])], to=TensorProto.INT64)  # taps past the edge weigh 0
    return index, b.op("Cast", [weight], to=TensorProto.FLOAT)

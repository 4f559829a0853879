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

import numpy as np
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
    """OpenCV's area path (frame at least the model's size): the exact box filter, rounded.

    Each pass takes running sums along its axis and reads them at the m + 1 cell borders, so the
    frame is read a constant number of times whatever the scale. The row pass sums the integer
    pixel values in float32, exact below 2**24 (rows up to 65k pixels); the column pass sums in
    float64. The integral over a cell [a, b) is S[floor b] - S[floor a] (exact) plus the
    fractional pixels at its two ends.
    """
    x = b.op("Cast", [image], to=TensorProto.FLOAT)
    for axis, length, dtype in ((2, size[1], TensorProto.FLOAT), (1, size[0], TensorProto.DOUBLE)):
        if dtype == TensorProto.DOUBLE:
            x = b.op("Cast", [x], to=dtype)
        n = b.op("Cast", [b.op("Gather", [shape, b.const_i64([axis])], axis=0)], to=TensorProto.DOUBLE)
        idx, frac, scale = _borders(b, n, length, axis)
        sums = b.op("Gather", [b.op("CumSum", [x, b.const_i64(axis)], exclusive=1), idx], axis=axis)
        ends = b.op("Mul", [b.op("Gather", [x, idx], axis=axis), b.op("Cast", [frac], to=dtype)])
        cell = b.op("Add", [_diff(b, sums, axis), _diff(b, ends, axis)])
        x = b.op("Div", [cell, b.op("Cast", [scale], to=dtype)])
    rounded = b.op("Clip", [b.op("Round", [x]), b.const_f64(0.0), b.const_f64(255.0)])
    return b.op("Cast", [rounded], to=TensorProto.UINT8)


def _borders(b: NodeBuilder, n: str, m: int, axis: int) -> tuple[str, str, str]:
    """Cell borders t_i = i * n / m (i = 0..m) of an axis: floor index (clamped), fraction, and n / m."""
    scale = b.op("Div", [n, b.const_f64(float(m))])
    t = b.op("Mul", [b.const(np.arange(m + 1, dtype=np.float64)), scale])
    floor = b.op("Min", [b.op("Floor", [t]), b.op("Sub", [n, b.const_f64(1.0)])])
    frac = b.op("Sub", [t, floor])  # in [0, 1]: 1 at the far edge, where floor is clamped
    trailing = [1] if axis == 2 else [1, 2]  # broadcast over the axes after `axis`
    frac = b.op("Unsqueeze", [frac, b.const_i64(trailing)])
    return b.op("Cast", [floor], to=TensorProto.INT64), frac, scale


def _diff(b: NodeBuilder, x: str, axis: int) -> str:
    """x[1:] - x[:-1] along `axis`."""
    ax = b.const_i64([axis])
    hi = b.op("Slice", [x, b.const_i64([1]), b.const_i64([2**62]), ax])
    lo = b.op("Slice", [x, b.const_i64([0]), b.const_i64([-1]), ax])
    return b.op("Sub", [hi, lo])


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

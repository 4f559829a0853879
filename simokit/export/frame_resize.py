"""OpenCV's INTER_AREA resize of uint8 frames as ONNX nodes, so the frame is resized inside the graph.

ONNX Resize has no area mode, and its antialiased linear mode (a triangle filter) differs from
INTER_AREA (a box filter) by ~9 grey levels on average on textured 720p frames, enough to move
every output of the network. OpenCV's two paths are written out instead, chosen per frame by an If:

- frame at least the model's size on both axes: the box filter. Output pixel i of an axis of
  length n resized to m covers [i*n/m, (i+1)*n/m); every source pixel contributes its overlap with
  that interval, divided by n/m. The integral of a row of pixels up to t is the running sum P
  read by linear interpolation at t, so a cell is two such reads. Rows go first, then the
  row-resized image is transposed so the column pass runs the same way: running sums that add
  whole contiguous rows are several times faster in ONNX Runtime than sums along a row.
  Results are rounded half to even as OpenCV's saturate_cast, or half up at exactly 2x, where
  OpenCV's fast path adds 2 before its shift; they differ from OpenCV only at rounding ties.
- any axis smaller: OpenCV's area-weighted bilinear in 11-bit fixed point, integer for integer,
  including the vectorised path's intermediate shifts.

Everything is float32 or integer, and uint8 appears only as the graph's input, which is what
TensorRT parses (no float64, no uint8 Gather). Cell borders are integer arithmetic (i*n div m and
its remainder), exact at any frame size; sums are exact integers in float32 (row sums of a frame
under 65k rows; the column pass splits each value into its nearest integer and a remainder in
[-0.5, 0.5] so neither running sum loses precision).
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto
from onnx import helper as oh

from simokit.export.graph_nodes import NodeBuilder

COEF_SCALE = 2048  # OpenCV's INTER_RESIZE_COEF_SCALE (11 bits)


def area_resize_nodes(b: NodeBuilder, image: str, size: tuple[int, int], flip: bool = False) -> str:
    """uint8 (B, H, W, 3) `image` -> float32 (B, size[0], size[1], 3) grey levels as cv2.INTER_AREA.

    `flip` reverses the channel order (BGR -> RGB) on the way, where the channels are whole rows of
    the resized image rather than every third value (a Gather of single values is the slow kind).
    """
    shape = b.op("Shape", [image])
    hw = b.op("Slice", [shape, b.const_i64([1]), b.const_i64([3])])
    shrink = b.op("ReduceMin", [b.op("Cast", [b.op("GreaterOrEqual", [hw, b.const_i64(list(size))])],
                                     to=TensorProto.INT32)], keepdims=0)  # fmt: skip
    cond = b.op("Cast", [shrink], to=TensorProto.BOOL)
    branches = {}
    for name, build in (("box", _box), ("fixed_point", _fixed_point)):
        sub = NodeBuilder(f"{b.prefix}/{name}")
        out = build(sub, image, hw, size, flip)
        vi = oh.make_tensor_value_info(out, TensorProto.FLOAT, None)
        branches[name] = oh.make_graph(sub.nodes, name, [], [vi], sub.initializers)
    return b.op("If", [cond], then_branch=branches["box"], else_branch=branches["fixed_point"])


def _box(b: NodeBuilder, image: str, hw: str, size: tuple[int, int], flip: bool) -> str:
    """OpenCV's area path (frame at least the model's size): the exact box filter, rounded."""
    x = b.op("Cast", [image], to=TensorProto.FLOAT)
    n_rows, n_cols = (b.op("Gather", [hw, b.const_i64([i])], axis=0) for i in (0, 1))
    rows = _cells(b, x, _borders(b, n_rows, size[0]))  # (B, h, W, 3), each value the mean of its cell
    # columns to the second axis, so their running sums also add whole contiguous rows: (B, W, 3, h)
    cols = b.op("Transpose", [rows], perm=[0, 2, 3, 1])
    hi = b.op("Round", [cols])
    borders = _borders(b, n_cols, size[1])
    parts = [_cells(b, part, borders) for part in (hi, b.op("Sub", [cols, hi]))]
    cells = b.op("Add", parts)  # (B, w, 3, h)
    if flip:
        cells = b.op("Gather", [cells, b.const_i64([2, 1, 0])], axis=2)
    mean = b.op("Transpose", [cells], perm=[0, 3, 1, 2])  # (B, h, w, 3)
    # OpenCV's 2x fast path rounds half up ((a + b + c + d + 2) >> 2); everything else half to even
    double = b.op("ReduceMin", [b.op("Cast", [b.op("Equal", [hw, b.const_i64([2 * size[0], 2 * size[1]])])],
                                     to=TensorProto.INT32)], keepdims=0)  # fmt: skip
    half_up = b.op("Floor", [b.op("Add", [mean, b.const_f32(0.5)])])
    rounded = b.op("Where", [b.op("Cast", [double], to=TensorProto.BOOL), half_up, b.op("Round", [mean])])
    return b.op("Clip", [rounded, b.const_f32(0.0), b.const_f32(255.0)])


def _borders(b: NodeBuilder, n: str, m: int) -> tuple[str, str, str]:
    """Cell borders t_i = i * n / m (i = 0..m) of an axis of length n: floor index, fraction, n / m.

    q_i = (i * n) div m and r_i = (i * n) mod m are exact integers. The last border (t = n) reads
    pixel n - 1 with weight 1 instead of pixel n.
    """
    i = b.const(np.arange(m + 1, dtype=np.int64))
    num = b.op("Mul", [i, n])
    q = b.op("Min", [b.op("Div", [num, b.const_i64(m)]), b.op("Sub", [n, b.const_i64(1)])])
    r = b.op("Sub", [num, b.op("Mul", [q, b.const_i64(m)])])  # in [0, m]: m at the clamped last border
    frac = b.op("Div", [b.op("Cast", [r], to=TensorProto.FLOAT), b.const_f32(float(m))])
    frac = b.op("Unsqueeze", [frac, b.const_i64([1, 2])])  # broadcast over the two trailing axes
    scale = b.op("Div", [b.op("Cast", [n], to=TensorProto.FLOAT), b.const_f32(float(m))])
    return q, frac, scale


def _cells(b: NodeBuilder, x: str, borders: tuple[str, str, str]) -> str:
    """Box-filter axis 1 of 4-D float `x` down to the cells `borders` gives; each value is its cell's mean.

    P[k] is the sum of the first k pixels; the integral up to t = q + f (q = floor) is P[q] + f * x[q].
    """
    q, frac, scale = borders
    prefix = b.op("Gather", [b.op("CumSum", [x, b.const_i64(1)], exclusive=1), q], axis=1)
    integral = b.op("Add", [prefix, b.op("Mul", [b.op("Gather", [x, q], axis=1), frac])])
    return b.op("Div", [_diff(b, integral, 1), scale])


def _diff(b: NodeBuilder, x: str, axis: int) -> str:
    """x[1:] - x[:-1] along `axis`."""
    ax = b.const_i64([axis])
    hi = b.op("Slice", [x, b.const_i64([1]), b.const_i64([2**62]), ax])
    lo = b.op("Slice", [x, b.const_i64([0]), b.const_i64([-1]), ax])
    return b.op("Sub", [hi, lo])


def _fixed_point(b: NodeBuilder, image: str, hw: str, size: tuple[int, int], flip: bool) -> str:
    """OpenCV's path when an axis grows: area-mode bilinear taps, 11-bit coefficients, integer sums."""
    taps = {}
    for axis, length in ((2, size[1]), (1, size[0])):
        taps[axis] = _linear_taps(b, b.op("Gather", [hw, b.const_i64([axis - 1])], axis=0), length)
    idx, coef = taps[2]
    pixels = b.op("Cast", [image], to=TensorProto.INT32)
    row = b.op("Gather", [pixels, idx], axis=2)  # (B, H, w, 2, 3)
    row = b.op("Mul", [row, b.op("Unsqueeze", [coef, b.const_i64([2])])])
    buf = b.op("ReduceSum", [row, b.const_i64([3])], keepdims=0)  # (B, H, w, 3), scale 2048
    idx, coef = taps[1]
    col = b.op("Div", [b.op("Gather", [buf, idx], axis=1), b.const_i32(16)])  # (B, h, 2, w, 3)
    col = b.op(
        "Div", [b.op("Mul", [col, b.op("Unsqueeze", [coef, b.const_i64([2, 3])])]), b.const_i32(65536)]
    )
    total = b.op("Add", [b.op("ReduceSum", [col, b.const_i64([2])], keepdims=0), b.const_i32(2)])
    out = b.op("Cast", [b.op("Div", [total, b.const_i32(4)])], to=TensorProto.FLOAT)
    return b.op("Gather", [out, b.const_i64([2, 1, 0])], axis=3) if flip else out


def _linear_taps(b: NodeBuilder, n: str, m: int) -> tuple[str, str]:
    """Indices (m, 2) int64 and 11-bit coefficients (m, 2) int32 of OpenCV's area-mode bilinear.

    OpenCV takes sx = floor(dx * n / m) and fx = (dx + 1) - (sx + 1) * m / n in float64, then
    float32; here sx = (dx * n) div m and fx = ((dx + 1) * n - (sx + 1) * m) / n, the same rational
    rounded once to float32.
    """
    dx = b.const(np.arange(m, dtype=np.int64)[:, None])
    sx = b.op("Div", [b.op("Mul", [dx, n]), b.const_i64(m)])
    one = b.const_i64(1)
    num = b.op("Sub", [b.op("Mul", [b.op("Add", [dx, one]), n]),
                       b.op("Mul", [b.op("Add", [sx, one]), b.const_i64(m)])])  # fmt: skip
    fx = b.op("Div", [b.op("Cast", [num], to=TensorProto.FLOAT), b.op("Cast", [n], to=TensorProto.FLOAT)])
    frac = b.op("Sub", [fx, b.op("Floor", [fx])])
    zero = b.const_f32(0.0)
    last = b.op("Sub", [n, one])
    at_edge = b.op("GreaterOrEqual", [sx, last])
    fx = b.op("Where", [b.op("Or", [b.op("LessOrEqual", [num, b.const_i64(0)]), at_edge]), zero, frac])
    sx = b.op("Min", [sx, last])
    nxt = b.op("Min", [b.op("Add", [sx, one]), last])
    idx = b.op("Concat", [sx, nxt], axis=1)
    weights = b.op("Concat", [b.op("Sub", [b.const_f32(1.0), fx]), fx], axis=1)
    scaled = b.op("Round", [b.op("Mul", [weights, b.const_f32(float(COEF_SCALE))])])
    return idx, b.op("Cast", [scaled], to=TensorProto.INT32)

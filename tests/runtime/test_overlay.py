"""Pictures from outputs: exact palette lookup, depth ordering, normal mapping, tiling."""

import numpy as np
import pytest

from simokit.errors import ShapeError
from simokit.runtime.overlay import blend, colorize_depth, colorize_seg, normals_to_rgb, panel


def test_colorize_seg_uses_palette() -> None:
    palette = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8)
    out = colorize_seg(np.array([[0, 1], [1, 7]]), palette)
    np.testing.assert_array_equal(out[0, 0], [1, 2, 3])
    np.testing.assert_array_equal(out[1, 0], [4, 5, 6])
    np.testing.assert_array_equal(out[1, 1], [0, 0, 0])  # id beyond the palette


def test_colorize_depth_near_is_warm_far_is_cool() -> None:
    rgb = colorize_depth(np.array([[0.5, 40.0]]), vmin=0.5, vmax=40.0)
    near, far = rgb[0, 0].astype(int), rgb[0, 1].astype(int)
    assert near[0] > near[2] and far[2] > far[0]


def test_normals_to_rgb_both_layouts() -> None:
    n = np.zeros((2, 2, 3), dtype=np.float32)
    n[..., 2] = -1.0
    out = normals_to_rgb(n)
    np.testing.assert_array_equal(out[0, 0], [127, 127, 0])
    np.testing.assert_array_equal(normals_to_rgb(n.transpose(2, 0, 1)), out)
    with pytest.raises(ShapeError):
        normals_to_rgb(np.zeros((4, 4)))


def test_panel_and_blend() -> None:
    a = np.zeros((4, 5, 3), dtype=np.uint8)
    b = np.full((4, 5, 3), 200, dtype=np.uint8)
    grid = panel([[a, b], [b]], gap=1)
    assert grid.shape == (9, 11, 3)
    assert grid[0, 6, 0] == 200 and grid[0, 5, 0] == 255 and grid[5, 6, 0] == 255
    np.testing.assert_array_equal(blend(a, b, 0.5), np.full_like(a, 100))
    with pytest.raises(ShapeError):
        panel([[a, np.zeros((3, 3, 3), dtype=np.uint8)]])

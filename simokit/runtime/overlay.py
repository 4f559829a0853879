"""Turn task outputs into pictures: segmentation palette, depth colour map, normals as RGB, panels.

COLOURISERS holds one entry per colouriser kind of the task table; stream views and the demo figure
both draw through it, so a task is drawn the same way everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from simokit.errors import ShapeError
from simokit.tasks.spec import TASKS, Colour

# Turbo colour map control points (Google's Turbo, sampled at 9 points); interpolated linearly.
_TURBO = np.array(
    [
        [48, 18, 59],
        [70, 107, 227],
        [40, 187, 236],
        [50, 241, 152],
        [164, 252, 60],
        [237, 208, 58],
        [251, 128, 34],
        [213, 48, 8],
        [122, 4, 3],
    ],
    dtype=np.float32,
)


def colorize_seg(labels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """(H, W) class ids -> (H, W, 3) uint8 RGB using `palette` (K, 3); ids >= K are black."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: len(palette)] = palette
    return lut[np.clip(labels, 0, 255).astype(np.uint8)]


def colorize_depth(depth: np.ndarray, vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """(H, W) metres -> (H, W, 3) uint8 RGB, near = warm; inverse depth spreads near detail out."""
    # no depth (NaN, inf, <= 0: holes of real sensors and of masked outputs) draws as the farthest colour
    metres = depth.astype(np.float32)
    inv = np.where(np.isfinite(metres) & (metres > 0), 1.0 / np.maximum(metres, 1e-3), 0.0)
    return colorize_disparity(inv, vmin, vmax)


def colorize_disparity(inv: np.ndarray, vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """(H, W) inverse depth of any scale -> (H, W, 3) uint8 RGB, near = warm; 0 or NaN = no depth.

    The colour map spans 1 / vmax .. 1 / vmin (a depth range in metres) when given, else the map's
    own 1st..99th percentiles over valid pixels, which is what inverse depth of unknown scale and
    shift needs.
    """
    inv = np.nan_to_num(inv.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    valid = inv[inv > 0]
    lo = 1.0 / vmax if vmax else float(np.percentile(valid, 1)) if valid.size else 0.0
    hi = 1.0 / vmin if vmin else float(np.percentile(valid, 99)) if valid.size else 1.0
    t = np.clip((inv - lo) / max(hi - lo, 1e-6), 0.0, 1.0) * (len(_TURBO) - 1)
    i0 = np.floor(t).astype(np.int64)
    i1 = np.minimum(i0 + 1, len(_TURBO) - 1)
    w = (t - i0)[..., None]
    return ((1 - w) * _TURBO[i0] + w * _TURBO[i1]).astype(np.uint8)


def normals_to_rgb(normals: np.ndarray) -> np.ndarray:
    """(H, W, 3) or (3, H, W) unit vectors -> (H, W, 3) uint8, the usual (n + 1) / 2 mapping."""
    if normals.ndim == 3 and normals.shape[0] == 3 and normals.shape[-1] != 3:
        normals = normals.transpose(1, 2, 0)
    if normals.ndim != 3 or normals.shape[-1] != 3:
        raise ShapeError(f"normals: expected (H, W, 3) or (3, H, W), got {normals.shape}")
    return np.clip((normals + 1.0) * 127.5, 0, 255).astype(np.uint8)


def gray_to_rgb(values: np.ndarray) -> np.ndarray:
    """(H, W) values in [0, 1] -> (H, W, 3) uint8 grey."""
    g = np.clip(values * 255.0, 0, 255).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=-1)


def blend(image: np.ndarray, overlay: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Alpha-blend two (H, W, 3) uint8 images."""
    if image.shape != overlay.shape:
        raise ShapeError(f"blend: image {image.shape} and overlay {overlay.shape} differ")
    return ((1 - alpha) * image.astype(np.float32) + alpha * overlay.astype(np.float32)).astype(np.uint8)


def panel(rows: list[list[np.ndarray]], gap: int = 2) -> np.ndarray:
    """Tile a grid of (H, W, 3) uint8 images (same size) into one image with `gap`-pixel white lines."""
    if not rows or not rows[0]:
        raise ShapeError("panel: nothing to tile")
    h, w, _ = rows[0][0].shape
    cols = max(len(r) for r in rows)
    out = np.full((len(rows) * (h + gap) - gap, cols * (w + gap) - gap, 3), 255, dtype=np.uint8)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            if img.shape != (h, w, 3):
                raise ShapeError(f"panel: tile ({i}, {j}) is {img.shape}, expected {(h, w, 3)}")
            out[i * (h + gap) : i * (h + gap) + h, j * (w + gap) : j * (w + gap) + w] = img
    return out


Range = tuple[float, float] | None


@dataclass(frozen=True)
class Colouriser:
    """Draws one kind of map as (H, W, 3) uint8 RGB: draw(map, palette, (vmin, vmax) or None).

    `labels`: the map is class ids, taken as the argmax of class scores, resized nearest and blended
    over the frame in stream views. `vectors`: the map is (H, W, 3), from a (3, H, W) output.
    """

    draw: Callable[[np.ndarray, np.ndarray, Range], np.ndarray]
    labels: bool = False
    vectors: bool = False


COLOURISERS: dict[Colour, Colouriser] = {
    Colour.PALETTE: Colouriser(lambda m, palette, _: colorize_seg(m, palette), labels=True),
    Colour.DEPTH: Colouriser(lambda m, _, vrange: colorize_depth(m, *(vrange or (None, None)))),
    Colour.NORMALS: Colouriser(lambda m, _, __: normals_to_rgb(m), vectors=True),
    Colour.GRAY: Colouriser(lambda m, _, __: gray_to_rgb(m)),
    Colour.DISPARITY: Colouriser(lambda m, _, vrange: colorize_disparity(m, *(vrange or (None, None)))),
}


def colour_of(task: str) -> Colouriser:
    """The colouriser of `task` in the task table; an output the table does not know is drawn grey."""
    return COLOURISERS[TASKS[task].colour if task in TASKS else Colour.GRAY]


def task_map(colouriser: Colouriser, value: np.ndarray) -> np.ndarray:
    """One image's output, (C, H, W) or labels (H, W), as the map its colouriser draws."""
    if colouriser.labels:
        return value.argmax(0) if value.ndim == 3 else value
    if colouriser.vectors:
        return np.moveaxis(value, 0, -1)
    return value.reshape(value.shape[-2:])

"""Procedural materials (plain, checker, stripes, value noise, gradient, brick) and the sky backdrop."""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np

KINDS = ("plain", "checker", "stripes", "noise", "gradient", "brick")
_GRID = 16  # period (in cells) of the random lattice behind value noise and per-brick jitter


@dataclass(frozen=True, eq=False)
class Material:
    """A 2-colour procedural texture: colours (3,) in [0, 1], feature `scale` in metres, uv `angle`."""

    kind: str
    color_a: np.ndarray
    color_b: np.ndarray
    scale: float
    angle: float
    aux: float  # stripe duty cycle, or mortar width as a fraction of brick height
    grunge: float  # amplitude of a low-frequency value-noise brightness modulation
    grid: np.ndarray  # (_GRID, _GRID) uniform random lattice


@dataclass(frozen=True, eq=False)
class Sky:
    """Sky backdrop: horizon and zenith colours (3,) plus value-noise clouds."""

    horizon: np.ndarray
    zenith: np.ndarray
    cloud_color: np.ndarray
    cloud_amount: float
    cloud_scale: float
    grid: np.ndarray


def random_color(rng: np.random.Generator, hue: float | None = None) -> np.ndarray:
    """Return a random RGB colour (3,) in [0, 1]; `hue` biases it towards one hue."""
    h = rng.random() if hue is None else (hue + rng.normal(0.0, 0.05)) % 1.0
    s = rng.uniform(0.0, 0.85)
    v = rng.uniform(0.15, 0.95)
    return np.array(colorsys.hsv_to_rgb(h, s, v))


def random_material(
    rng: np.random.Generator, kinds: tuple[str, ...] = KINDS, hue: float | None = None
) -> Material:
    """Sample a material; every class draws from overlapping colour/texture distributions."""
    kind = kinds[int(rng.integers(len(kinds)))]
    a = random_color(rng, hue if rng.random() < 0.4 else None)
    if rng.random() < 0.5:
        b = random_color(rng)
    else:
        b = np.clip(a * rng.uniform(0.35, 0.8) + rng.uniform(-0.05, 0.05, 3), 0.0, 1.0)
    aux = rng.uniform(0.25, 0.75) if kind == "stripes" else rng.uniform(0.08, 0.2)
    return Material(
        kind=kind,
        color_a=a,
        color_b=b,
        scale=float(np.exp(rng.uniform(np.log(0.08), np.log(1.2)))),
        angle=float(rng.uniform(0, math.pi)) if rng.random() < 0.4 else 0.0,
        aux=float(aux),
        grunge=float(rng.uniform(0.0, 0.35)),
        grid=rng.random((_GRID, _GRID)),
    )


def random_sky(rng: np.random.Generator) -> Sky:
    """Sample a sky: blue, overcast grey or dusk, with a random amount of cloud."""
    style = rng.integers(3)
    if style == 0:
        zenith = np.array(colorsys.hsv_to_rgb(rng.uniform(0.55, 0.65), rng.uniform(0.4, 0.8), 0.8))
        horizon = np.clip(zenith + rng.uniform(0.15, 0.35), 0, 1)
    elif style == 1:
        g = rng.uniform(0.5, 0.85)
        zenith = np.full(3, g) * rng.uniform(0.9, 1.0, 3)
        horizon = np.clip(zenith + 0.1, 0, 1)
    else:
        zenith = np.array(colorsys.hsv_to_rgb(rng.uniform(0.6, 0.75), 0.5, rng.uniform(0.35, 0.6)))
        horizon = np.array(colorsys.hsv_to_rgb(rng.uniform(0.0, 0.1), 0.6, rng.uniform(0.7, 0.95)))
    return Sky(
        horizon=horizon,
        zenith=zenith,
        cloud_color=np.full(3, rng.uniform(0.75, 1.0)),
        cloud_amount=float(rng.uniform(0.0, 0.9)),
        cloud_scale=float(rng.uniform(0.3, 1.5)),
        grid=rng.random((_GRID, _GRID)),
    )


def value_noise(grid: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Smoothly interpolated lattice noise in [0, 1] at (N,) coordinates measured in lattice cells."""
    g = grid.shape[0]
    fu, fv = np.floor(u), np.floor(v)
    iu, iv = fu.astype(np.int64) % g, fv.astype(np.int64) % g
    wu, wv = u - fu, v - fv
    wu, wv = wu * wu * (3 - 2 * wu), wv * wv * (3 - 2 * wv)
    ju, jv = (iu + 1) % g, (iv + 1) % g
    top = grid[iv, iu] * (1 - wu) + grid[iv, ju] * wu
    bottom = grid[jv, iu] * (1 - wu) + grid[jv, ju] * wu
    return top * (1 - wv) + bottom * wv


def _fade(footprint: np.ndarray, feature: float) -> np.ndarray:
    # Cheap anti-aliasing: a pattern whose features are under ~2 pixels wide fades to its mean.
    return np.clip(2.0 - 4.0 * footprint / feature, 0.0, 1.0)


def albedo(mat: Material, uv: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """Return (N, 3) albedo in [0, 1] at uv (N, 2) metres, given each pixel's footprint (N,) in metres."""
    c, s = math.cos(mat.angle), math.sin(mat.angle)
    u = (c * uv[:, 0] - s * uv[:, 1]) / mat.scale
    v = (s * uv[:, 0] + c * uv[:, 1]) / mat.scale
    fp = footprint / mat.scale  # footprint in units of the feature size
    shade = np.ones_like(u)
    if mat.kind == "plain":
        p = np.zeros_like(u)
    elif mat.kind == "checker":
        p = 0.5 + ((np.floor(u) + np.floor(v)) % 2 - 0.5) * _fade(fp, 1.0)
    elif mat.kind == "stripes":
        duty = mat.aux
        p = duty + ((u % 1.0 < duty) - duty) * _fade(fp, min(duty, 1 - duty))
    elif mat.kind == "gradient":
        p = 0.5 + 0.5 * np.sin(math.pi * u) * _fade(fp, 0.5)
    elif mat.kind == "noise":
        p = np.zeros_like(u)
        for octave in range(3):
            k = 2.0**octave
            n = value_noise(mat.grid, u * k + 5.3 * octave, v * k + 1.7 * octave)
            p += (0.5 + (n - 0.5) * _fade(fp * k, 1.0)) / (k * 1.75)
        p = np.clip((p - 0.5) * 2.2 + 0.5, 0.0, 1.0)
    else:  # brick: rows of bricks 2 units long, 1 unit high, every other row offset by half a brick
        row = np.floor(v)
        ub = u + 0.5 * (row % 2) * 2.0
        col = np.floor(ub / 2.0)
        fu, fv = ub - 2.0 * col, v - row
        m = mat.aux
        mortar = ((fu < m) | (fv < m)).astype(np.float64)
        mean = 1.5 * m - 0.5 * m * m  # area fraction of mortar
        p = mean + (mortar - mean) * _fade(fp, m)
        jitter = mat.grid[row.astype(np.int64) % _GRID, col.astype(np.int64) % _GRID]
        shade = 1.0 + (jitter - 0.5) * 0.4 * _fade(fp, 1.0)
    if mat.grunge > 0:
        g = value_noise(mat.grid.T, u * 0.25 + 3.1, v * 0.25 + 7.9)
        shade = shade * (1.0 + mat.grunge * (g - 0.5))
    rgb = mat.color_a + p[:, None] * (mat.color_b - mat.color_a)
    return np.clip(rgb * shade[:, None], 0.0, 1.0)


def sky_color(sky: Sky, dirs: np.ndarray) -> np.ndarray:
    """Return (N, 3) sky colour for world view directions dirs (N, 3) (Z up)."""
    unit = dirs / np.linalg.norm(dirs, axis=-1, keepdims=True)
    up = np.clip(unit[:, 2], 0.0, 1.0)
    rgb = sky.horizon + np.sqrt(up)[:, None] * (sky.zenith - sky.horizon)
    if sky.cloud_amount > 0:
        # Project onto a cloud layer overhead so clouds shrink towards the horizon like real ones.
        h = np.maximum(unit[:, 2], 0.03)
        cu, cv = unit[:, 0] / h * sky.cloud_scale, unit[:, 1] / h * sky.cloud_scale
        n = 0.65 * value_noise(sky.grid, cu, cv) + 0.35 * value_noise(sky.grid.T, 2 * cu + 3.3, 2 * cv)
        cover = np.clip((n - (1.0 - sky.cloud_amount * 0.6)) * 4.0, 0.0, 1.0) * np.sqrt(up)
        rgb = rgb + cover[:, None] * (sky.cloud_color - rgb)
    return rgb

"""Lambertian shading from directional and point lights, with hard shadows cast by scene items."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from simokit.data.scene.world import Light, Scene

SHADOW_BIAS = 1e-3  # metres; lifts shadow-ray origins off the surface to avoid self-shadowing


def _components(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split (M, 3) into three contiguous (M,) arrays; elementwise maths on them beats axis reductions."""
    return np.ascontiguousarray(v[:, 0]), np.ascontiguousarray(v[:, 1]), np.ascontiguousarray(v[:, 2])


def _candidates(light: Light, origins: np.ndarray) -> Callable[[np.ndarray, float], np.ndarray]:
    """Return a cheap conservative test: which shadow rays could hit a bounding sphere (centre, radius)."""
    if light.kind == "directional":
        towards = np.asarray(light.vector, dtype=np.float64)
        e1 = np.cross(towards, [0.0, 0.0, 1.0] if abs(towards[2]) < 0.9 else [1.0, 0.0, 0.0])
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(towards, e1)
        ox, oy, oz = _components(origins)
        # Parallel rays: compare positions projected onto the plane perpendicular to the light.
        pa, pb, pl = (ox * e[0] + oy * e[1] + oz * e[2] for e in (e1, e2, towards))

        def directional(centre: np.ndarray, radius: float) -> np.ndarray:
            da, db = pa - centre @ e1, pb - centre @ e2
            return (da * da + db * db <= radius * radius) & (pl < centre @ towards + radius)

        return directional
    lamp = np.asarray(light.vector, dtype=np.float64)
    vx, vy, vz = _components(origins - lamp)
    dist = np.sqrt(vx * vx + vy * vy + vz * vz)
    ux, uy, uz = vx / dist, vy / dist, vz / dist

    def point(centre: np.ndarray, radius: float) -> np.ndarray:
        w = centre - lamp
        dw = float(np.linalg.norm(w))
        if dw <= radius:
            return np.ones(len(dist), dtype=bool)
        # Rays leaving the lamp within the cone the sphere subtends, and reaching past its near side.
        cos_cone = math.sqrt(1.0 - (radius / dw) ** 2)
        w = w / dw
        return (ux * w[0] + uy * w[1] + uz * w[2] >= cos_cone) & (dist > dw - radius)

    return point


def _visibility(scene: Scene, light: Light, origins: np.ndarray, to_light: np.ndarray) -> np.ndarray:
    """Return (M,) bool: True where the segment/ray from origins (M, 3) along to_light (M, 3) is clear."""
    clear = np.ones(len(origins), dtype=bool)
    limit = 1.0 if light.kind == "point" else np.inf
    could_hit = _candidates(light, origins)
    for item in scene.items:
        bound = item.shape.bound()
        if not item.casts_shadow or bound is None:
            continue
        idx = np.flatnonzero(could_hit(*bound) & clear)
        if len(idx) == 0:
            continue
        t = item.shape.intersect(origins[idx], to_light[idx])
        clear[idx[t < limit]] = False
    return clear


def shade(scene: Scene, p: np.ndarray, n: np.ndarray, shadows: bool) -> np.ndarray:
    """Return (M,) Lambertian shading in [0, 1] at points p (M, 3) with unit normals n (M, 3)."""
    total = np.full(len(p), scene.ambient)
    for light in scene.lights:
        if light.kind == "point":
            to_light = np.asarray(light.vector) - p
            dist = np.linalg.norm(to_light, axis=-1)
            cos = (n * to_light).sum(-1) / np.maximum(dist, 1e-9)
            power = light.intensity * light.falloff**2 / (light.falloff**2 + dist**2)
        else:
            to_light = np.broadcast_to(np.asarray(light.vector), p.shape)
            cos = (n * to_light).sum(-1)
            power = np.full(len(p), light.intensity)
        lit = np.flatnonzero(cos > 0)
        contrib = np.zeros(len(p))
        contrib[lit] = power[lit] * cos[lit]
        if shadows and light.shadows and len(lit):
            origins = p[lit] + SHADOW_BIAS * n[lit]
            point = light.kind == "point"
            direction = np.asarray(light.vector) - origins if point else to_light[lit]
            contrib[lit[~_visibility(scene, light, origins, direction)]] = 0.0
        total += contrib
    return np.clip(total, 0.0, 1.0)

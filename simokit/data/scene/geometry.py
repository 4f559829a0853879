"""Ray-traceable primitives (plane, yaw-rotated box, sphere, vertical cylinder), vectorised over rays.

Every `intersect(o, d)` takes origins (3,) or (..., 3) and directions (..., 3), not necessarily unit,
and returns the smallest ray parameter t > EPS as (...,) float64 (inf where the ray misses).
`surface(p)` returns, for hit points p (N, 3): outward normals (N, 3), texture coordinates in metres
(N, 2) and a face index (N,) so texture edges can be told apart from face boundaries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

EPS = 1e-4


class Shape(Protocol):
    """Anything the ray caster can intersect and texture."""

    def intersect(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        """Return (...,) nearest hit distances along d (inf for misses)."""
        ...

    def surface(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return normals (N, 3), uv (N, 2) and face ids (N,) at hit points p (N, 3)."""
        ...

    def bound(self) -> tuple[np.ndarray, float] | None:
        """Return a bounding sphere (centre (3,), radius), or None when unbounded."""
        ...

    def contains(self, point: np.ndarray, margin: float) -> bool:
        """Return True when `point` (3,) lies inside the shape grown by `margin` metres."""
        ...


def _miss_to_inf(t: np.ndarray, hit: np.ndarray) -> np.ndarray:
    # NaNs from degenerate rays compare False and so become misses as well.
    return np.where(hit & (t > EPS), t, np.inf)


@dataclass(frozen=True)
class Plane:
    """Infinite plane {x : normal . x = offset}; normal is a unit axis-aligned or general (3,) vector."""

    normal: tuple[float, float, float]
    offset: float

    def intersect(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        """Return (...,) hit distances along d (inf for misses)."""
        nx, ny, nz = self.normal
        o = np.asarray(o, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            num = self.offset - (o[..., 0] * nx + o[..., 1] * ny + o[..., 2] * nz)
            t = num / (d[..., 0] * nx + d[..., 1] * ny + d[..., 2] * nz)
        return _miss_to_inf(t, np.isfinite(t))

    def surface(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return normals (N, 3), uv (N, 2) from the two world axes most parallel to the plane, faces (N,)."""
        n = np.asarray(self.normal, dtype=np.float64)
        axis = int(np.argmax(np.abs(n)))
        u_axis, v_axis = [(1, 2), (0, 2), (0, 1)][axis]
        uv = np.stack([p[:, u_axis], p[:, v_axis]], -1)
        return np.broadcast_to(n, p.shape).copy(), uv, np.zeros(len(p), np.int64)

    def bound(self) -> tuple[np.ndarray, float] | None:
        """Planes are unbounded."""
        return None

    def contains(self, point: np.ndarray, margin: float) -> bool:
        """Return True when `point` is within `margin` of the plane (planes have no inside)."""
        return abs(float(np.dot(self.normal, point)) - self.offset) < margin


@dataclass(frozen=True)
class Box:
    """Box with centre (3,), half extents (3,) and a rotation `yaw` (radians) about world +Z."""

    centre: tuple[float, float, float]
    half: tuple[float, float, float]
    yaw: float = 0.0

    def _local(self, v: np.ndarray) -> np.ndarray:
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        x, y = v[..., 0], v[..., 1]
        return np.stack([c * x + s * y, c * y - s * x, v[..., 2]], -1)

    def _world(self, v: np.ndarray) -> np.ndarray:
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        x, y = v[..., 0], v[..., 1]
        return np.stack([c * x - s * y, s * x + c * y, v[..., 2]], -1)

    def intersect(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        """Return (...,) slab-test entry distances along d (inf for misses or origins inside)."""
        o = np.asarray(o, dtype=np.float64)
        ox, oy, oz = o[..., 0] - self.centre[0], o[..., 1] - self.centre[1], o[..., 2] - self.centre[2]
        dx, dy, dz = d[..., 0], d[..., 1], d[..., 2]
        if self.yaw != 0.0:
            c, s = math.cos(self.yaw), math.sin(self.yaw)
            ox, oy = c * ox + s * oy, c * oy - s * ox
            dx, dy = c * dx + s * dy, c * dy - s * dx
        tnear: np.ndarray | float = -np.inf
        tfar: np.ndarray | float = np.inf
        # Per-axis slabs on 1-D component arrays: much faster than reductions over a size-3 axis.
        # A zero direction gives +-inf (or NaN on a slab face, which then counts as a miss).
        with np.errstate(divide="ignore", invalid="ignore"):
            for ol, dl, h in ((ox, dx, self.half[0]), (oy, dy, self.half[1]), (oz, dz, self.half[2])):
                inv = 1.0 / dl
                ta, tb = (-h - ol) * inv, (h - ol) * inv
                tnear = np.maximum(tnear, np.minimum(ta, tb))
                tfar = np.minimum(tfar, np.maximum(ta, tb))
            return _miss_to_inf(np.asarray(tnear), np.asarray(tnear <= tfar))

    def surface(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return face normals (N, 3), in-face local coordinates as uv (N, 2) and face ids 0..5 (N,)."""
        pl = self._local(p - np.asarray(self.centre))
        axis = np.argmax(np.abs(pl) / np.asarray(self.half), -1)
        sign = np.sign(np.take_along_axis(pl, axis[:, None], 1))[:, 0]
        nl = np.zeros_like(pl)
        nl[np.arange(len(p)), axis] = np.where(sign == 0, 1.0, sign)
        u = np.where(axis == 0, pl[:, 1], pl[:, 0])
        v = np.where(axis == 2, pl[:, 1], pl[:, 2])
        return self._world(nl), np.stack([u, v], -1), axis * 2 + (sign > 0)

    def bound(self) -> tuple[np.ndarray, float] | None:
        """Return the circumscribed sphere."""
        return np.asarray(self.centre, dtype=np.float64), float(np.linalg.norm(self.half))

    def contains(self, point: np.ndarray, margin: float) -> bool:
        """Return True when `point` lies inside the box grown by `margin`."""
        pl = self._local(np.asarray(point, dtype=np.float64) - np.asarray(self.centre))
        return bool(np.all(np.abs(pl) < np.asarray(self.half) + margin))


@dataclass(frozen=True)
class Sphere:
    """Sphere with centre (3,) and radius."""

    centre: tuple[float, float, float]
    radius: float

    def intersect(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        """Return (...,) nearest hit distances along d (inf for misses)."""
        o = np.asarray(o, dtype=np.float64)
        ox, oy, oz = o[..., 0] - self.centre[0], o[..., 1] - self.centre[1], o[..., 2] - self.centre[2]
        dx, dy, dz = d[..., 0], d[..., 1], d[..., 2]
        a = dx * dx + dy * dy + dz * dz
        b = dx * ox + dy * oy + dz * oz
        c = ox * ox + oy * oy + oz * oz - self.radius**2
        disc = b * b - a * c
        t = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
        return _miss_to_inf(t, disc > 0)

    def surface(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return radial normals (N, 3), longitude/latitude arc lengths as uv (N, 2), faces (N,)."""
        n = (p - np.asarray(self.centre)) / self.radius
        n /= np.linalg.norm(n, axis=-1, keepdims=True)
        r = self.radius
        uv = np.stack([r * np.arctan2(n[:, 1], n[:, 0]), r * np.arcsin(np.clip(n[:, 2], -1, 1))], -1)
        return n, uv, np.zeros(len(p), np.int64)

    def bound(self) -> tuple[np.ndarray, float] | None:
        """Return the sphere itself."""
        return np.asarray(self.centre, dtype=np.float64), self.radius

    def contains(self, point: np.ndarray, margin: float) -> bool:
        """Return True when `point` lies inside the sphere grown by `margin`."""
        return float(np.linalg.norm(np.asarray(point) - np.asarray(self.centre))) < self.radius + margin


@dataclass(frozen=True)
class Cylinder:
    """Capped cylinder with a vertical axis through (x, y), spanning heights z0 < z1."""

    x: float
    y: float
    z0: float
    z1: float
    radius: float

    def intersect(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        """Return (...,) nearest hit distances on the side or the caps (inf for misses)."""
        o = np.asarray(o, dtype=np.float64)
        ox, oy, oz = o[..., 0] - self.x, o[..., 1] - self.y, o[..., 2]
        dx, dy, dz = d[..., 0], d[..., 1], d[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            a = dx * dx + dy * dy
            b = dx * ox + dy * oy
            c = ox * ox + oy * oy - self.radius**2
            disc = b * b - a * c
            ts = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
            zs = oz + ts * dz
            side = _miss_to_inf(ts, (disc > 0) & (zs >= self.z0) & (zs <= self.z1))
            # Only a cap on the origin's side of the slab can be the entry point.
            zc = np.where(oz > self.z1, self.z1, self.z0)
            tc = (zc - oz) / dz
            cx, cy = ox + tc * dx, oy + tc * dy
            outside = (oz > self.z1) | (oz < self.z0)
            cap = _miss_to_inf(tc, outside & (cx * cx + cy * cy <= self.radius**2))
        return np.minimum(side, cap)

    def surface(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return normals (N, 3), uv (N, 2): arc length and height on the side, x/y on caps; faces (N,)."""
        dx, dy, z = p[:, 0] - self.x, p[:, 1] - self.y, p[:, 2]
        rho = np.maximum(np.hypot(dx, dy), 1e-12)
        on_side = np.abs(rho - self.radius) <= np.minimum(np.abs(z - self.z0), np.abs(z - self.z1))
        up = np.where(z > 0.5 * (self.z0 + self.z1), 1.0, -1.0)
        n = np.stack(
            [np.where(on_side, dx / rho, 0.0), np.where(on_side, dy / rho, 0.0), np.where(on_side, 0.0, up)],
            -1,
        )
        u = np.where(on_side, self.radius * np.arctan2(dy, dx), dx)
        v = np.where(on_side, z, dy)
        face = np.where(on_side, 0, np.where(up > 0, 1, 2))
        return n, np.stack([u, v], -1), face

    def bound(self) -> tuple[np.ndarray, float] | None:
        """Return the circumscribed sphere."""
        half = 0.5 * (self.z1 - self.z0)
        return np.array([self.x, self.y, self.z0 + half]), math.hypot(self.radius, half)

    def contains(self, point: np.ndarray, margin: float) -> bool:
        """Return True when `point` lies inside the cylinder grown by `margin`."""
        px, py, pz = (float(v) for v in point)
        inside_r = math.hypot(px - self.x, py - self.y) < self.radius + margin
        return inside_r and self.z0 - margin < pz < self.z1 + margin

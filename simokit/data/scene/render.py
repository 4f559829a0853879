"""Vectorised ray caster: one primary ray per pixel, Lambertian lights with optional hard shadows."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from simokit.data.labels import CLASS_ID
from simokit.data.scene.materials import albedo, sky_color
from simokit.data.scene.world import Light, Scene

EDGE_SCALE = 0.3  # albedo RGB step (0..1 units) that maps to edge strength 1
SHADOW_BIAS = 1e-3  # metres; lifts shadow-ray origins off the surface to avoid self-shadowing


def _screen_rect(
    centre: np.ndarray,
    radius: float,
    origin: np.ndarray,
    axes: np.ndarray,
    K: np.ndarray,  # noqa: N803 (the usual name of the intrinsics matrix)
    hw: tuple[int, int],
) -> tuple[int, int, int, int] | None:
    """Return a conservative pixel rectangle (v0, v1, u0, u1) covering a bounding sphere, None if unseen."""
    h, w = hw
    q = axes @ (centre - origin)
    if q[2] + radius < 0.05:  # entirely behind the camera
        return None
    if q[2] - radius < 0.05:  # straddles the camera plane: test every pixel
        return 0, h, 0, w
    near, far = q[2] - radius, q[2] + radius
    rect = []
    for i, size in ((1, h), (0, w)):
        hi = (q[i] + radius) / (near if q[i] + radius > 0 else far)
        lo = (q[i] - radius) / (far if q[i] - radius > 0 else near)
        a = max(0, math.floor(K[i, 2] + K[i, i] * lo))
        b = min(size, math.ceil(K[i, 2] + K[i, i] * hi) + 1)
        if a >= b:
            return None
        rect += [a, b]
    return rect[0], rect[1], rect[2], rect[3]


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


def _shading(scene: Scene, p: np.ndarray, n: np.ndarray, shadows: bool) -> np.ndarray:
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


def _edges(rgb: np.ndarray, surface: np.ndarray) -> np.ndarray:
    """Return (H, W) texture edge strength in [0, 1] from albedo (H, W, 3) within each surface id (H, W)."""
    ex = np.zeros(surface.shape)
    ey = np.zeros(surface.shape)
    # Steps across surface boundaries are geometry, not texture, so they are masked out.
    dx = np.linalg.norm(rgb[:, 1:] - rgb[:, :-1], axis=-1) * (surface[:, 1:] == surface[:, :-1])
    dy = np.linalg.norm(rgb[1:] - rgb[:-1], axis=-1) * (surface[1:] == surface[:-1])
    ex[:, 1:] = dx
    ex[:, :-1] = np.maximum(ex[:, :-1], dx)
    ey[1:] = dy
    ey[:-1] = np.maximum(ey[:-1], dy)
    return np.clip(np.hypot(ex, ey) / EDGE_SCALE, 0.0, 1.0)


def render(scene: Scene, height: int, width: int, shadows: bool = True) -> dict[str, np.ndarray]:
    """Ray-cast `scene` to image (H, W, 3) uint8 and seg, depth, normal, edge, shading, intrinsics."""
    cam = scene.camera
    origin = np.asarray(cam.position, dtype=np.float64)
    axes = cam.axes()
    K = cam.intrinsics(height, width)
    rays = cam.rays(height, width)

    t_buf = np.full((height, width), np.inf)
    id_buf = np.full((height, width), -1, dtype=np.int64)
    for k, item in enumerate(scene.items):
        bound = item.shape.bound()
        rect = (
            (0, height, 0, width) if bound is None else _screen_rect(*bound, origin, axes, K, (height, width))
        )
        if rect is None:
            continue
        v0, v1, u0, u1 = rect
        t = item.shape.intersect(origin, rays[v0:v1, u0:u1])
        closer = t < t_buf[v0:v1, u0:u1]
        t_buf[v0:v1, u0:u1][closer] = t[closer]
        id_buf[v0:v1, u0:u1][closer] = k

    sky = (id_buf < 0) | (t_buf > scene.far)
    if scene.sky is None and sky.any():
        raise RuntimeError("rays escaped a scene without sky; the room must enclose the camera")
    depth = np.where(sky, scene.far, t_buf).reshape(-1)
    flat_rays = rays.reshape(-1, 3)
    ids = np.where(sky, -1, id_buf).reshape(-1)
    npix = height * width

    normal = np.broadcast_to(-axes[2], (npix, 3)).copy()  # sky backdrop faces the camera
    uv = np.zeros((npix, 2))
    surface = np.full(npix, -1, dtype=np.int64)
    points = origin + depth[:, None] * flat_rays
    labels = np.full(npix, CLASS_ID["sky"], dtype=np.uint8)
    mat_of_pixel = np.full(npix, -1, dtype=np.int64)
    for k in np.unique(ids[ids >= 0]):
        item = scene.items[k]
        idx = np.flatnonzero(ids == k)
        n, tex, face = item.shape.surface(points[idx])
        normal[idx], uv[idx], surface[idx] = n, tex, k * 8 + face
        labels[idx] = item.label
        mat_of_pixel[idx] = item.material
    # Planes (and any back-facing hit) get their normal flipped towards the viewer.
    facing = (normal * flat_rays).sum(-1)
    normal[facing > 0] *= -1
    facing = np.abs(facing)

    rgb = np.zeros((npix, 3))
    ray_len = np.linalg.norm(flat_rays, axis=-1)
    footprint = depth * ray_len / K[0, 0] / np.maximum(facing / ray_len, 0.2)
    for m in np.unique(mat_of_pixel[mat_of_pixel >= 0]):
        idx = np.flatnonzero(mat_of_pixel == m)
        rgb[idx] = albedo(scene.materials[m], uv[idx], footprint[idx])
    sky_idx = np.flatnonzero(ids < 0)
    if len(sky_idx) and scene.sky is not None:
        rgb[sky_idx] = sky_color(scene.sky, flat_rays[sky_idx])

    shading = np.ones(npix)
    solid = np.flatnonzero(ids >= 0)
    shading[solid] = _shading(scene, points[solid], normal[solid], shadows)

    image = rgb * np.where(ids >= 0, shading * scene.gain, 1.0)[:, None] * np.asarray(scene.tint)
    if scene.sky is not None and np.isfinite(scene.far):
        # Haze towards the horizon colour hides the cut where geometry beyond `far` becomes sky.
        fog = np.where(ids >= 0, np.clip(depth / scene.far, 0.0, 1.0) ** scene.fog_gamma, 0.0)
        image += fog[:, None] * (scene.sky.horizon * np.asarray(scene.tint) - image)
    if scene.noise_sigma > 0:
        image += np.random.default_rng(scene.noise_seed).normal(0.0, scene.noise_sigma, image.shape)
    image_u8 = np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)

    normal_cam = np.stack([(normal * axes[i]).sum(-1) for i in range(3)], -1)
    normal_cam /= np.linalg.norm(normal_cam, axis=-1, keepdims=True)
    hw = (height, width)
    return {
        "image": image_u8.reshape(height, width, 3),
        "seg": labels.reshape(hw),
        "depth": depth.reshape(hw).astype(np.float32),
        "normal": normal_cam.reshape(height, width, 3).astype(np.float32),
        "edge": _edges(rgb.reshape(height, width, 3), surface.reshape(hw)).astype(np.float32),
        "shading": shading.reshape(hw).astype(np.float32),
        "intrinsics": K.astype(np.float32),
    }

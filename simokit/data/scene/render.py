"""Vectorised ray caster: one primary ray per pixel to image, seg, depth, normal, edge and shading."""

from __future__ import annotations

import math

import numpy as np

from simokit.data.labels import CLASS_ID
from simokit.data.scene.lighting import shade
from simokit.data.scene.materials import albedo, sky_color
from simokit.data.scene.world import Scene

EDGE_SCALE = 0.3  # albedo RGB step (0..1 units) that maps to edge strength 1


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


def _primary_hits(scene: Scene, rays: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # noqa: N803
    """Return the nearest hit distance (H, W) and item index (H, W, -1 = none) of each camera ray."""
    height, width = rays.shape[:2]
    origin = np.asarray(scene.camera.position, dtype=np.float64)
    axes = scene.camera.axes()
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
    return t_buf, id_buf


def _surfaces(
    scene: Scene, ids: np.ndarray, points: np.ndarray, flat_rays: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Return per-pixel world normal facing the viewer, |normal . ray|, uv, surface id, label, material."""
    npix = len(ids)
    normal = np.broadcast_to(-scene.camera.axes()[2], (npix, 3)).copy()  # sky backdrop faces the camera
    uv = np.zeros((npix, 2))
    surface = np.full(npix, -1, dtype=np.int64)
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
    return normal, np.abs(facing), uv, surface, labels, mat_of_pixel


def _albedo(
    scene: Scene,
    ids: np.ndarray,
    mat_of_pixel: np.ndarray,
    uv: np.ndarray,
    footprint: np.ndarray,
    flat_rays: np.ndarray,
) -> np.ndarray:
    """Return (M, 3) albedo RGB: each material's texture on its pixels, the sky colour on sky pixels."""
    rgb = np.zeros((len(ids), 3))
    for m in np.unique(mat_of_pixel[mat_of_pixel >= 0]):
        idx = np.flatnonzero(mat_of_pixel == m)
        rgb[idx] = albedo(scene.materials[m], uv[idx], footprint[idx])
    sky_idx = np.flatnonzero(ids < 0)
    if len(sky_idx) and scene.sky is not None:
        rgb[sky_idx] = sky_color(scene.sky, flat_rays[sky_idx])
    return rgb


def _expose(
    scene: Scene, rgb: np.ndarray, shading: np.ndarray, ids: np.ndarray, depth: np.ndarray
) -> np.ndarray:
    """Return (M, 3) uint8 pixels: albedo times light, sensor gain and tint, horizon haze and noise."""
    image = rgb * np.where(ids >= 0, shading * scene.gain, 1.0)[:, None] * np.asarray(scene.tint)
    if scene.sky is not None and np.isfinite(scene.far):
        # Haze towards the horizon colour hides the cut where geometry beyond `far` becomes sky.
        fog = np.where(ids >= 0, np.clip(depth / scene.far, 0.0, 1.0) ** scene.fog_gamma, 0.0)
        image += fog[:, None] * (scene.sky.horizon * np.asarray(scene.tint) - image)
    if scene.noise_sigma > 0:
        image += np.random.default_rng(scene.noise_seed).normal(0.0, scene.noise_sigma, image.shape)
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def render(scene: Scene, height: int, width: int, shadows: bool = True) -> dict[str, np.ndarray]:
    """Ray-cast `scene` to image (H, W, 3) uint8 and seg, depth, normal, edge, shading, intrinsics."""
    cam = scene.camera
    origin = np.asarray(cam.position, dtype=np.float64)
    axes = cam.axes()
    K = cam.intrinsics(height, width)
    rays = cam.rays(height, width)
    t_buf, id_buf = _primary_hits(scene, rays, K)

    sky = (id_buf < 0) | (t_buf > scene.far)
    if scene.sky is None and sky.any():
        raise RuntimeError("rays escaped a scene without sky; the room must enclose the camera")
    depth = np.where(sky, scene.far, t_buf).reshape(-1)
    flat_rays = rays.reshape(-1, 3)
    ids = np.where(sky, -1, id_buf).reshape(-1)
    points = origin + depth[:, None] * flat_rays
    normal, facing, uv, surface, labels, mat_of_pixel = _surfaces(scene, ids, points, flat_rays)

    ray_len = np.linalg.norm(flat_rays, axis=-1)
    footprint = depth * ray_len / K[0, 0] / np.maximum(facing / ray_len, 0.2)
    rgb = _albedo(scene, ids, mat_of_pixel, uv, footprint, flat_rays)
    shading = np.ones(height * width)
    solid = np.flatnonzero(ids >= 0)
    shading[solid] = shade(scene, points[solid], normal[solid], shadows)
    image_u8 = _expose(scene, rgb, shading, ids, depth)

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
        # inverse depth: what affine-invariant depth models predict, up to a scale and a shift
        "relative_depth": np.where(depth > 0, 1.0 / np.maximum(depth, 1e-6), 0.0)
        .reshape(hw)
        .astype(np.float32),
        "intrinsics": K.astype(np.float32),
    }

"""Shared helpers for the indoor and outdoor scene builders: item collection and sensor settings."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from simokit.data.scene.camera import Camera
from simokit.data.scene.geometry import Shape
from simokit.data.scene.materials import KINDS, Material, random_material
from simokit.data.scene.world import Item, Light

CAMERA_CLEARANCE = 0.3  # metres kept free around the camera so no shape swallows it


class Builder:
    """Collects items and materials for one scene, dropping shapes that would enclose the camera."""

    def __init__(self, rng: np.random.Generator, eye: np.ndarray) -> None:
        """Start an empty scene whose camera sits at `eye` (3,)."""
        self.rng = rng
        self.eye = eye
        self.items: list[Item] = []
        self.materials: list[Material] = []

    def material(self, kinds: tuple[str, ...] = KINDS, hue: float | None = None) -> int:
        """Sample a new material and return its index."""
        self.materials.append(random_material(self.rng, kinds, hue))
        return len(self.materials) - 1

    def add(self, shape: Shape, label: int, material: int, casts_shadow: bool = True) -> bool:
        """Add a shape unless it would contain the camera; return whether it was added."""
        if casts_shadow and shape.contains(self.eye, CAMERA_CLEARANCE):
            return False
        self.items.append(Item(shape, label, material, casts_shadow))
        return True


def look_camera(rng: np.random.Generator, eye: np.ndarray, yaw: float, pitch: tuple[float, float]) -> Camera:
    """Return a camera at `eye` (3,) with the given yaw, a pitch drawn from `pitch` and a random FOV."""
    return Camera(
        position=(float(eye[0]), float(eye[1]), float(eye[2])),
        yaw=float(yaw),
        pitch=float(rng.uniform(*pitch)),
        fov_x=math.radians(float(rng.uniform(50.0, 90.0))),
    )


def sensor(rng: np.random.Generator) -> dict[str, Any]:
    """Return per-scene exposure gain, colour tint, sensor noise level and noise seed."""
    tint = 1.0 + rng.uniform(-0.08, 0.08, 3)
    return {
        "tint": (float(tint[0]), float(tint[1]), float(tint[2])),
        "gain": float(rng.uniform(0.95, 1.35)),
        "noise_sigma": float(rng.uniform(0.003, 0.02)),
        "noise_seed": int(rng.integers(2**62)),
    }


def direction(azimuth: float, elevation: float) -> tuple[float, float, float]:
    """Return the unit vector (3,) with the given azimuth (from +X) and elevation (Z up), radians."""
    ce = math.cos(elevation)
    return (ce * math.cos(azimuth), ce * math.sin(azimuth), math.sin(elevation))


def balance_lights(
    rng: np.random.Generator, ambient: float, lights: list[Light], peak: tuple[float, float]
) -> tuple[float, tuple[Light, ...]]:
    """Rescale ambient and light intensities so their sum (the brightest possible shading) is in `peak`."""
    scale = float(rng.uniform(*peak)) / (ambient + sum(light.intensity for light in lights))
    return ambient * scale, tuple(replace(light, intensity=light.intensity * scale) for light in lights)

"""Plain data describing one scene: labelled shapes, materials, lights, sky and sensor settings."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simokit.data.scene.camera import Camera
from simokit.data.scene.geometry import Shape
from simokit.data.scene.materials import Material, Sky


@dataclass(frozen=True)
class Light:
    """A directional light (`vector` = unit direction towards it) or a point light (`vector` = position)."""

    kind: str  # "directional" or "point"
    vector: tuple[float, float, float]
    intensity: float
    falloff: float = 1.0  # point lights scale by falloff^2 / (falloff^2 + distance^2)
    shadows: bool = True


@dataclass(frozen=True)
class Item:
    """One shape with a class id (index into CLASS_NAMES) and a material index."""

    shape: Shape
    label: int
    material: int
    casts_shadow: bool = True


@dataclass(frozen=True, eq=False)
class Scene:
    """Everything the ray caster needs; `far` is the sky backdrop distance (inf when there is no sky)."""

    camera: Camera
    items: tuple[Item, ...]
    materials: tuple[Material, ...]
    lights: tuple[Light, ...]
    ambient: float
    sky: Sky | None = None
    far: float = np.inf
    fog_gamma: float = 2.0
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    gain: float = 1.0
    noise_sigma: float = 0.0
    noise_seed: int = 0

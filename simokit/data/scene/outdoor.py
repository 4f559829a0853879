"""Random street scenes along world +Y: road, raised sidewalks, buildings, trees, vehicles, poles, sky."""

from __future__ import annotations

import math

import numpy as np

from simokit.data.labels import CLASS_ID
from simokit.data.scene.camera import Camera
from simokit.data.scene.geometry import Box, Cylinder, Plane, Sphere
from simokit.data.scene.layout import Builder, balance_lights, direction, look_camera, sensor
from simokit.data.scene.materials import random_sky
from simokit.data.scene.world import Light, Scene

FLOOR, ROAD, BUILDING = CLASS_ID["floor"], CLASS_ID["road"], CLASS_ID["building"]
VEGETATION, VEHICLE, PILLAR = CLASS_ID["vegetation"], CLASS_ID["vehicle"], CLASS_ID["pillar"]
FAR = 60.0  # metres: z-depth of the sky backdrop; anything further is drawn and labelled as sky
GREEN, BROWN = 0.3, 0.08  # hue priors, used only part of the time so colour alone never decides


def _buildings(b: Builder, side: int, front: float) -> None:
    """Line one side of the street (x sign `side`) with boxes whose facades start at |x| = front."""
    rng = b.rng
    shared = b.material()
    y = -90.0 + rng.uniform(0, 10)
    while y < 90.0:
        width, depth, height = rng.uniform(6, 20), rng.uniform(6, 20), rng.uniform(4, 30)
        x = side * (front + rng.uniform(0, 2) + depth / 2)
        mat = shared if rng.random() < 0.3 else b.material()
        b.add(Box((x, y + width / 2, height / 2), (depth / 2, width / 2, height / 2)), BUILDING, mat)
        y += width + (rng.uniform(1, 6) if rng.random() < 0.3 else 0.0)


def _vehicle(b: Builder, x: float, y: float, yaw: float) -> None:
    """Add a car or van: a body box, a cabin box and four wheel blocks."""
    rng = b.rng
    mat = b.material()
    big = rng.random() < 0.2
    length = rng.uniform(5.5, 9.0) if big else rng.uniform(3.6, 5.0)
    width = rng.uniform(1.9, 2.5) if big else rng.uniform(1.6, 2.0)
    body = rng.uniform(1.8, 2.8) if big else rng.uniform(0.6, 0.9)
    clear = 0.3
    c, s = math.cos(yaw), math.sin(yaw)
    if not b.add(Box((x, y, clear + body / 2), (length / 2, width / 2, body / 2), yaw), VEHICLE, mat):
        return
    if not big:
        cabin_l, cabin_h = length * rng.uniform(0.4, 0.6), rng.uniform(0.35, 0.55)
        off = rng.uniform(-0.2, 0.1) * length
        centre = (x + c * off, y + s * off, clear + body + cabin_h / 2)
        b.add(Box(centre, (cabin_l / 2, width * 0.44, cabin_h / 2), yaw), VEHICLE, b.material())
    wheels = b.material(kinds=("plain", "noise"))
    for sx in (-0.32, 0.32):
        for sy in (-0.5, 0.5):
            lx, ly = sx * length, sy * (width - 0.15)
            centre = (x + c * lx - s * ly, y + s * lx + c * ly, 0.33)
            b.add(Box(centre, (0.33, 0.1, 0.33), yaw), VEHICLE, wheels)


def _vegetation(b: Builder, x: float, y: float, base: float) -> None:
    """Add a tree (trunk + canopy), a bush or a hedge standing on height `base` at (x, y)."""
    rng = b.rng
    kind = rng.choice(["tree", "tree", "bush", "hedge"])
    leaves = b.material(hue=GREEN)
    if kind == "tree":
        trunk = float(rng.uniform(1.5, 3.5))
        radius = float(rng.uniform(1.0, 2.8))
        b.add(Cylinder(x, y, base, base + trunk, rng.uniform(0.1, 0.3)), VEGETATION, b.material(hue=BROWN))
        b.add(Sphere((x, y, base + trunk + 0.7 * radius), radius), VEGETATION, leaves)
    elif kind == "bush":
        r = float(rng.uniform(0.4, 1.2))
        b.add(Sphere((x, y, base + 0.4 * r), r), VEGETATION, leaves)
    else:
        half = (float(rng.uniform(0.3, 0.7)), float(rng.uniform(1.0, 6.0)), float(rng.uniform(0.25, 0.8)))
        b.add(Box((x, y, base + half[2]), half), VEGETATION, leaves)


def _street_camera(
    rng: np.random.Generator, road: float, walk: float, curb: float
) -> tuple[np.ndarray, Camera]:
    """Return the eye (3,) over the road or a sidewalk and a camera looking mostly along the street."""
    side = 1.0 if rng.random() < 0.5 else -1.0
    cam_x = side * rng.uniform(0.0, road + walk - 0.6)
    eye = np.array([cam_x, 0.0, rng.uniform(1.2, 3.5) + (curb if abs(cam_x) > road else 0.0)])
    # Mostly along the street: facing a facade from a few metres away shows little but one wall.
    yaw = (0.0 if rng.random() < 0.5 else math.pi) + float(np.clip(rng.normal(0.0, 0.5), -1.1, 1.1))
    return eye, look_camera(rng, eye, yaw, (-0.35, 0.2))


def _street(b: Builder, road: float, walk: float, curb: float) -> None:
    """Add the road plane, a raised sidewalk on each side and a row of buildings behind each sidewalk."""
    rng = b.rng
    b.add(Plane((0.0, 0.0, 1.0), 0.0), ROAD, b.material(), casts_shadow=False)
    walk_mat = b.material()
    for sgn in (-1, 1):
        mat = walk_mat if rng.random() < 0.7 else b.material()
        # Sidewalks reach far behind the buildings so gaps between them show pavement, not road.
        b.add(
            Box((sgn * (road + 40.0), 0.0, curb / 2), (40.0, 120.0, curb / 2)), FLOOR, mat, casts_shadow=False
        )
        _buildings(b, sgn, road + walk)


def _street_objects(b: Builder, road: float, walk: float, curb: float) -> None:
    """Add vegetation on the sidewalks, vehicles parked or driving on the road, and poles at the curb."""
    rng = b.rng
    for _ in range(int(rng.integers(1, 10))):
        sgn = -1 if rng.random() < 0.5 else 1
        x = sgn * (road + rng.uniform(0.5, walk - 0.3))
        _vegetation(b, x, float(rng.uniform(-35, 35)), curb)
    for _ in range(int(rng.integers(1, 9))):
        sgn = -1 if rng.random() < 0.5 else 1
        if rng.random() < 0.6:  # parked at the curb
            x = sgn * (road - rng.uniform(1.1, 1.6))
        else:
            x = rng.uniform(-road + 1.2, road - 1.2)
        heading = math.pi / 2 + (0.0 if rng.random() < 0.5 else math.pi) + rng.normal(0.0, 0.08)
        _vehicle(b, x, float(rng.uniform(-30, 30)), heading)
    for _ in range(int(rng.integers(1, 8))):
        sgn = -1 if rng.random() < 0.5 else 1
        x = sgn * (road + rng.uniform(0.2, 0.6))
        r = rng.uniform(0.06, 0.2) if rng.random() < 0.7 else rng.uniform(0.25, 0.5)
        y = float(rng.uniform(-30, 30))
        b.add(Cylinder(x, y, curb, curb + rng.uniform(2.5, 8.0), r), PILLAR, b.material())


def _daylight(rng: np.random.Generator) -> tuple[float, tuple[Light, ...]]:
    """Return the balanced ambient level and lights: a sun (weak when overcast) and unshadowed skylight."""
    overcast = rng.random() < 0.3
    sun = direction(float(rng.uniform(0, 2 * math.pi)), float(rng.uniform(0.25, 1.3)))
    ambient = float(rng.uniform(0.3, 0.45) if overcast else rng.uniform(0.15, 0.35))
    return balance_lights(
        rng,
        ambient,
        [
            Light("directional", sun, float(rng.uniform(0.1, 0.3) if overcast else rng.uniform(0.45, 0.8))),
            Light("directional", (0.0, 0.0, 1.0), float(rng.uniform(0.05, 0.2)), shadows=False),
        ],
        (0.8, 1.05),
    )


def build_outdoor(rng: np.random.Generator) -> Scene:
    """Sample a street scene: the road runs along Y around x = 0, sidewalks and buildings on both sides."""
    road = float(rng.uniform(3.0, 7.0))  # half width
    walk = float(rng.uniform(2.0, 5.0))
    curb = float(rng.uniform(0.1, 0.2))
    eye, camera = _street_camera(rng, road, walk, curb)
    b = Builder(rng, eye)
    _street(b, road, walk, curb)
    _street_objects(b, road, walk, curb)
    ambient, lights = _daylight(rng)
    return Scene(
        camera=camera,
        items=tuple(b.items),
        materials=tuple(b.materials),
        lights=lights,
        ambient=ambient,
        sky=random_sky(rng),
        far=FAR,
        fog_gamma=float(rng.uniform(1.5, 3.0)),
        **sensor(rng),
    )

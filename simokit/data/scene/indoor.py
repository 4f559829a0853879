"""Random indoor rooms: floor, walls, ceiling, furniture boxes, balls and pillars under lamps."""

from __future__ import annotations

import math

import numpy as np

from simokit.data.labels import CLASS_ID
from simokit.data.scene.camera import Camera
from simokit.data.scene.geometry import Box, Cylinder, Plane, Sphere
from simokit.data.scene.layout import Builder, balance_lights, direction, look_camera, sensor
from simokit.data.scene.world import Light, Scene

FLOOR, WALL, CEILING = CLASS_ID["floor"], CLASS_ID["wall"], CLASS_ID["ceiling"]
FURNITURE, BALL, PILLAR = CLASS_ID["furniture"], CLASS_ID["ball"], CLASS_ID["pillar"]


def _against_wall(
    rng: np.random.Generator, size: tuple[float, float], half_depth: float
) -> tuple[float, ...]:
    """Return (x, y, yaw) placing a footprint of half width/depth flush against a random wall."""
    lx, ly = size
    wall = int(rng.integers(4))
    along = lx if wall < 2 else ly
    s = float(rng.uniform(0.1, 0.9)) * along
    if wall == 0:
        return s, half_depth, 0.0
    if wall == 1:
        return s, ly - half_depth, math.pi
    if wall == 2:
        return half_depth, s, math.pi / 2
    return lx - half_depth, s, -math.pi / 2


def _furniture(b: Builder, size: tuple[float, float], tops: list[tuple[float, float, float, float]]) -> None:
    """Add one random piece of furniture; table tops are recorded in `tops` as (x, y, z, radius)."""
    rng = b.rng
    mat = b.material()
    kind = rng.choice(["cabinet", "table", "sofa", "shelf", "crate"])
    if kind in ("cabinet", "shelf"):
        w, d = rng.uniform(0.25, 0.9), rng.uniform(0.15, 0.35)
        h = rng.uniform(0.4, 1.2) if kind == "cabinet" else rng.uniform(1.4, 2.2)
        x, y, yaw = _against_wall(rng, size, d)
        b.add(Box((x, y, h / 2), (w, d, h / 2), yaw), FURNITURE, mat)
        return
    x, y = rng.uniform(0.5, size[0] - 0.5), rng.uniform(0.5, size[1] - 0.5)
    yaw = float(rng.uniform(0, math.pi))
    c, s = math.cos(yaw), math.sin(yaw)
    if kind == "table":
        w, d, h, th = (
            rng.uniform(0.3, 0.9),
            rng.uniform(0.3, 0.6),
            rng.uniform(0.45, 0.8),
            rng.uniform(0.03, 0.07),
        )
        if not b.add(Box((x, y, h - th), (w, d, th), yaw), FURNITURE, mat):
            return
        leg = rng.uniform(0.025, 0.06)
        for sx in (-1, 1):
            for sy in (-1, 1):
                lx_, ly_ = sx * (w - leg), sy * (d - leg)
                centre = (x + c * lx_ - s * ly_, y + s * lx_ + c * ly_, (h - 2 * th) / 2)
                b.add(Box(centre, (leg, leg, (h - 2 * th) / 2), yaw), FURNITURE, mat)
        tops.append((x, y, h, min(w, d)))
    elif kind == "sofa":
        w, d, h = rng.uniform(0.6, 1.1), rng.uniform(0.35, 0.5), rng.uniform(0.3, 0.5)
        if b.add(Box((x, y, h / 2), (w, d, h / 2), yaw), FURNITURE, mat):
            back = rng.uniform(0.08, 0.15)
            off = d - back
            b.add(Box((x - s * off, y + c * off, h + 0.25), (w, back, 0.25), yaw), FURNITURE, mat)
    else:
        e = rng.uniform(0.12, 0.4)
        b.add(Box((x, y, e), (e, e * rng.uniform(0.7, 1.3), e), yaw), FURNITURE, mat)


def _room_camera(
    rng: np.random.Generator, size: tuple[float, float], height: float
) -> tuple[np.ndarray, Camera]:
    """Return the eye (3,) somewhere inside the room and a camera looking roughly at the room's centre."""
    eye = np.array(
        [
            rng.uniform(0.4, size[0] - 0.4),
            rng.uniform(0.4, size[1] - 0.4),
            rng.uniform(0.6, min(2.0, height - 0.4)),
        ]
    )
    centre = np.array([size[0] / 2, size[1] / 2])
    yaw = math.atan2(centre[0] - eye[0], centre[1] - eye[1]) + rng.normal(0.0, 0.7)
    return eye, look_camera(rng, eye, yaw, (-0.65, 0.2))


def _shell(b: Builder, size: tuple[float, float], height: float) -> None:
    """Add floor, ceiling and four walls, with flat panels on the walls and sometimes a rug."""
    rng = b.rng
    b.add(Plane((0.0, 0.0, 1.0), 0.0), FLOOR, b.material(), casts_shadow=False)
    b.add(Plane((0.0, 0.0, 1.0), height), CEILING, b.material(), casts_shadow=False)
    shared = b.material()
    walls = (((1.0, 0.0, 0.0), 0.0), ((1.0, 0.0, 0.0), size[0]), ((0.0, 1.0, 0.0), 0.0))
    for normal, offset in (*walls, ((0.0, 1.0, 0.0), size[1])):
        mat = shared if rng.random() < 0.7 else b.material()
        b.add(Plane(normal, offset), WALL, mat, casts_shadow=False)
    for _ in range(int(rng.integers(0, 4))):  # doors, windows and pictures: flat panels labelled wall
        w, h = rng.uniform(0.3, 1.0), rng.uniform(0.3, min(2.1, height - 0.2))
        x, y, yaw_p = _against_wall(rng, size, 0.02)
        z = rng.uniform(h, height - 0.1) if rng.random() < 0.6 else h
        b.add(Box((x, y, z - h / 2 + 0.01), (w, 0.02, h / 2), yaw_p), WALL, b.material())
    if rng.random() < 0.4:  # rug
        w, d = rng.uniform(0.5, 1.5), rng.uniform(0.5, 1.5)
        x, y = rng.uniform(w, size[0] - w), rng.uniform(d, size[1] - d)
        b.add(Box((x, y, 0.005), (w, d, 0.005), float(rng.uniform(0, math.pi))), FLOOR, b.material())


def _pillars(b: Builder, size: tuple[float, float], height: float) -> None:
    """Add up to two floor-to-ceiling pillars, round or square."""
    rng = b.rng
    for _ in range(int(rng.integers(0, 3))):
        x, y = rng.uniform(0.4, size[0] - 0.4), rng.uniform(0.4, size[1] - 0.4)
        if rng.random() < 0.5:
            b.add(Cylinder(x, y, 0.0, height, rng.uniform(0.12, 0.4)), PILLAR, b.material())
        else:
            e = rng.uniform(0.15, 0.35)
            b.add(
                Box((x, y, height / 2), (e, e, height / 2), float(rng.uniform(0, math.pi))),
                PILLAR,
                b.material(),
            )


def _balls(b: Builder, size: tuple[float, float], tops: list[tuple[float, float, float, float]]) -> None:
    """Add one to six balls, on the floor or resting on a table top from `tops`."""
    rng = b.rng
    for _ in range(int(rng.integers(1, 7))):
        r = float(rng.uniform(0.1, 0.45))
        if tops and rng.random() < 0.4:
            tx, ty, tz, tr = tops[int(rng.integers(len(tops)))]
            r = min(r, 0.2)
            off = rng.uniform(-0.5, 0.5, 2) * tr
            b.add(Sphere((tx + off[0], ty + off[1], tz + r), r), BALL, b.material())
        else:
            x, y = rng.uniform(r, size[0] - r), rng.uniform(r, size[1] - r)
            b.add(Sphere((x, y, r), r), BALL, b.material())


def _room_lights(b: Builder, size: tuple[float, float], height: float) -> tuple[float, tuple[Light, ...]]:
    """Return the balanced ambient level and lights: ceiling lamps clear of pillars, maybe a window sun."""
    rng = b.rng
    ambient = float(rng.uniform(0.12, 0.35))
    lights = []
    for _ in range(int(rng.integers(1, 3))):
        for _try in range(10):  # a lamp inside a pillar would shadow the whole room
            pos = (
                float(rng.uniform(0.5, size[0] - 0.5)),
                float(rng.uniform(0.5, size[1] - 0.5)),
                height - 0.2,
            )
            if not any(it.casts_shadow and it.shape.contains(np.array(pos), 0.05) for it in b.items):
                lights.append(Light("point", pos, float(rng.uniform(0.5, 1.0)), float(rng.uniform(2.0, 5.0))))
                break
    if rng.random() < 0.6:  # light through a window: a directional light that the walls do not block
        sun = direction(float(rng.uniform(0, 2 * math.pi)), float(rng.uniform(0.3, 1.0)))
        lights.append(Light("directional", sun, float(rng.uniform(0.2, 0.5))))
    # Lamps fall off with distance, so indoor peaks may exceed 1 before surfaces actually saturate.
    return balance_lights(rng, ambient, lights, (0.9, 1.3))


def build_indoor(rng: np.random.Generator) -> Scene:
    """Sample a closed rectangular room [0, Lx] x [0, Ly] x [0, Hz] seen from inside."""
    size = (float(rng.uniform(4.0, 10.0)), float(rng.uniform(4.0, 10.0)))
    height = float(rng.uniform(2.4, 4.0))
    eye, camera = _room_camera(rng, size, height)
    b = Builder(rng, eye)
    _shell(b, size, height)
    tops: list[tuple[float, float, float, float]] = []
    for _ in range(int(rng.integers(3, 8))):
        _furniture(b, size, tops)
    _pillars(b, size, height)
    _balls(b, size, tops)
    ambient, lights = _room_lights(b, size, height)
    return Scene(
        camera=camera,
        items=tuple(b.items),
        materials=tuple(b.materials),
        lights=lights,
        ambient=ambient,
        **sensor(rng),
    )

"""Class names, colours, domains and task keys shared by the scene generator and the data loaders."""

from __future__ import annotations

import numpy as np

CLASS_NAMES: tuple[str, ...] = (
    "floor",
    "wall",
    "ceiling",
    "furniture",
    "ball",
    "pillar",
    "road",
    "building",
    "vegetation",
    "vehicle",
    "sky",
)
CLASS_ID: dict[str, int] = {name: i for i, name in enumerate(CLASS_NAMES)}
IGNORE_LABEL = 255

# Hand-picked so neighbouring classes stay distinguishable in montages.
PALETTE: np.ndarray = np.array(
    [
        [128, 64, 128],  # floor
        [220, 180, 60],  # wall
        [120, 220, 240],  # ceiling
        [200, 40, 40],  # furniture
        [250, 130, 10],  # ball
        [150, 150, 150],  # pillar
        [60, 40, 90],  # road
        [70, 70, 200],  # building
        [40, 160, 40],  # vegetation
        [240, 60, 200],  # vehicle
        [70, 130, 180],  # sky
    ],
    dtype=np.uint8,
)
PALETTE.setflags(write=False)

DOMAINS: tuple[str, ...] = ("indoor", "outdoor")
TASK_KEYS: tuple[str, ...] = ("seg", "depth", "normal", "edge", "shading", "relative_depth")

"""Pinhole camera in a Z-up world: pose, intrinsics and per-pixel ray directions."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Camera:
    """Pinhole camera at `position` (3,) metres; yaw about world +Z (0 looks along +Y), pitch up > 0."""

    position: tuple[float, float, float]
    yaw: float
    pitch: float
    fov_x: float  # horizontal field of view, radians

    def axes(self) -> np.ndarray:
        """Return (3, 3) rows right, down, forward: the camera x, y, z axes in world coordinates."""
        cy, sy = math.cos(self.yaw), math.sin(self.yaw)
        cp, sp = math.cos(self.pitch), math.sin(self.pitch)
        forward = np.array([cp * sy, cp * cy, sp])
        right = np.array([cy, -sy, 0.0])
        # down = forward x right keeps the camera frame right-handed (x right, y down, z forward).
        down = np.cross(forward, right)
        return np.stack([right, down, forward])

    def intrinsics(self, height: int, width: int) -> np.ndarray:
        """Return the (3, 3) float64 matrix K mapping camera points to pixel indices (centres at integers)."""
        f = 0.5 * width / math.tan(0.5 * self.fov_x)
        return np.array([[f, 0.0, 0.5 * (width - 1)], [0.0, f, 0.5 * (height - 1)], [0.0, 0.0, 1.0]])

    def rays(self, height: int, width: int) -> np.ndarray:
        """Return (H, W, 3) world ray directions whose camera-z component is 1, so hit t is z-depth."""
        K = self.intrinsics(height, width)
        x = (np.arange(width) - K[0, 2]) / K[0, 0]
        y = (np.arange(height) - K[1, 2]) / K[1, 1]
        right, down, forward = self.axes()
        # Elementwise sums rather than a matmul: BLAS threading must not change the bytes.
        return x[None, :, None] * right + y[:, None, None] * down + forward

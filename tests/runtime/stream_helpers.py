"""Helpers for the stream tests: videos written with OpenCV, a scripted live camera, a slow engine."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from simokit.runtime.sources import Source, StreamError

FRAME_HW = (48, 64)  # not the bundle's 56x56, so resizing both ways is exercised


def write_video(path: Path, frames: np.ndarray, fps: float = 10.0) -> Path:
    """Write BGR frames with OpenCV's mp4v encoder."""
    import cv2

    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def count_frames(path: Path) -> int:
    """Decode a video to the end and count its frames."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


class FakeLive(Source):
    """A live camera: frames of value `session * 10 + n % 10`; `drop_after` frames per session, then None.

    `opens` scripts open(): True opens, False fails (StreamError), the last entry repeats.
    """

    live = True

    def __init__(
        self, opens: list[bool], drop_after: int = 0, period: float = 0.001, drop_sessions: int | None = None
    ) -> None:
        self.uri, self.opens, self.drop_after, self.period = "fake://cam", opens, drop_after, period
        self.drop_sessions = drop_sessions  # how many sessions drop (None: every one)
        self.open_calls = 0
        self.session = -1
        self._count = 0

    def open(self) -> None:
        """Follow the script."""
        ok = self.opens[min(self.open_calls, len(self.opens) - 1)]
        self.open_calls += 1
        if not ok:
            raise StreamError(f"cannot open source '{self.uri}': scripted failure")
        self.session += 1
        self._count = 0

    def read(self) -> np.ndarray | None:
        """A small frame after `period` seconds, or None once this session has dropped."""
        dropping = self.drop_sessions is None or self.session < self.drop_sessions
        if self.drop_after and self._count >= self.drop_after and dropping:
            return None
        time.sleep(self.period)  # a camera paces its frames; also keeps this thread off the GIL
        self._count += 1
        return np.full((*FRAME_HW, 3), self.session * 10 + self._count % 10, np.uint8)

    def close(self) -> None:
        """Nothing to release."""


class SlowEngine:
    """Stands in for an Engine whose inference takes `seconds`; outputs record the frame's first pixel."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def infer(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """Sleep, then return a depth map carrying the frame's value."""
        time.sleep(self.seconds)
        return {"depth": np.full((1, *image.shape[:2]), float(image[0, 0, 0]), np.float32)}

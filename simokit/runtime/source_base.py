"""The frame-source interface every source implements, its error type, and the OpenCV import guard.

The sources themselves: simokit.runtime.capture (OpenCV cameras, files, streams),
simokit.runtime.folder_source (image folders), simokit.runtime.ros.bag (ROS 2 bags);
simokit.runtime.sources parses source URIs into them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

import numpy as np

from simokit.errors import SimokitError

if TYPE_CHECKING:
    from simokit.runtime.ros.header import FrameHeader


class StreamError(SimokitError):
    """A frame source cannot be opened, or a live source was lost and could not be re-opened."""


class Source(ABC):
    """Where frames come from: open() may raise StreamError; read() gives BGR uint8 or None when done."""

    uri: str
    live: bool  # cameras and network streams: keep only the newest frame, re-open when they drop
    fps: float = 0.0  # nominal rate when known (used for recordings), else 0
    header: FrameHeader | None = None  # the stamp and frame of the frame read() last gave, when recorded
    name: str | None = None  # the name of the frame read() last gave (a file's path, no suffix), if any

    @abstractmethod
    def open(self) -> None:
        """Open (or re-open) the source; raise StreamError naming the URI when that fails."""

    @abstractmethod
    def read(self) -> np.ndarray | None:
        """Next (H, W, 3) uint8 BGR frame; None at end of file or when a live source dropped."""

    @abstractmethod
    def close(self) -> None:
        """Release the device or file; safe to call twice."""

    def skip(self) -> bool:
        """Move past the next frame without returning it; False at the end (overridden where cheaper)."""
        return self.read() is not None

    def count(self) -> int | None:
        """Frames an opened finite source holds when known without reading them, else None."""
        return None

    def dropped(self) -> int:
        """Frames read() has passed over since open() because they could not be decoded."""
        return 0


def require_cv2(what: str) -> Any:
    """The cv2 module, or StreamError saying `what` needs OpenCV and how to install it."""
    try:
        import cv2
    except ImportError:
        raise StreamError(f"{what} needs OpenCV: pip install 'simokit[cv]' (or JetPack's OpenCV)") from None
    return cv2

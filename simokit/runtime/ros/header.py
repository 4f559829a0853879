"""What a frame keeps of its ROS message: the header (stamp, frame_id), log time and camera_info.

Outputs are stamped with their input's header, never with the time they were computed, so a consumer
can match them to the image and to other sensors. camera_info is kept as the message's fields and
scaled to the output size the way image_proc's resize node scales it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

NANOS = 1_000_000_000


@dataclass(frozen=True)
class CameraInfo:
    """sensor_msgs/CameraInfo's fields (header excluded: the frame's header is used)."""

    width: int
    height: int
    distortion_model: str = ""
    d: tuple[float, ...] = ()
    k: tuple[float, ...] = (0.0,) * 9
    r: tuple[float, ...] = (0.0,) * 9
    p: tuple[float, ...] = (0.0,) * 12
    binning_x: int = 0
    binning_y: int = 0
    roi: tuple[int, int, int, int, bool] = (0, 0, 0, 0, False)  # x_offset, y_offset, height, width, rectify

    def scaled(self, width: int, height: int) -> CameraInfo:
        """The calibration of this camera for its image resized to width x height."""
        sx, sy = width / self.width, height / self.height
        k, p = list(self.k), list(self.p)
        for i in (0, 2):
            k[i] *= sx
        for i in (4, 5):
            k[i] *= sy
        for i in (0, 2, 3):
            p[i] *= sx
        for i in (5, 6):
            p[i] *= sy
        x, y, h, w, rectify = self.roi
        roi = (round(x * sx), round(y * sy), round(h * sy), round(w * sx), rectify)
        return replace(self, width=width, height=height, k=tuple(k), p=tuple(p), roi=roi)

    @classmethod
    def from_msg(cls, msg: Any) -> CameraInfo:
        """From a decoded sensor_msgs/CameraInfo (attributes or dict keys)."""
        roi = field(msg, "roi")
        return cls(
            int(field(msg, "width")),
            int(field(msg, "height")),
            str(field(msg, "distortion_model")),
            tuple(float(v) for v in field(msg, "d")),
            tuple(float(v) for v in field(msg, "k")),
            tuple(float(v) for v in field(msg, "r")),
            tuple(float(v) for v in field(msg, "p")),
            int(field(msg, "binning_x")),
            int(field(msg, "binning_y")),
            _roi(roi),
        )

    def to_msg(self, header: dict[str, Any]) -> dict[str, Any]:
        """As a sensor_msgs/CameraInfo dict with `header`."""
        names = ("x_offset", "y_offset", "height", "width", "do_rectify")
        return {
            "header": header,
            "height": self.height,
            "width": self.width,
            "distortion_model": self.distortion_model,
            "d": list(self.d),
            "k": list(self.k),
            "r": list(self.r),
            "p": list(self.p),
            "binning_x": self.binning_x,
            "binning_y": self.binning_y,
            "roi": dict(zip(names, self.roi, strict=True)),
        }


@dataclass(frozen=True)
class FrameHeader:
    """A frame's std_msgs/Header (stamp as sec + nanosec, frame_id), its bag log time and camera_info."""

    sec: int
    nanosec: int
    frame_id: str
    log_time: int = 0  # nanoseconds; 0 when the frame was not read from a recording
    camera_info: CameraInfo | None = None

    @property
    def stamp_ns(self) -> int:
        """The stamp in nanoseconds."""
        return self.sec * NANOS + self.nanosec

    def to_msg(self) -> dict[str, Any]:
        """As a std_msgs/Header dict."""
        return {"stamp": {"sec": self.sec, "nanosec": self.nanosec}, "frame_id": self.frame_id}

    @classmethod
    def from_msg(cls, header: Any, log_time: int = 0, camera_info: CameraInfo | None = None) -> FrameHeader:
        """From a decoded std_msgs/Header."""
        stamp = field(header, "stamp")
        sec, nanosec = int(field(stamp, "sec")), int(field(stamp, "nanosec"))
        return cls(sec, nanosec, str(field(header, "frame_id")), log_time, camera_info)


def _roi(roi: Any) -> tuple[int, int, int, int, bool]:
    """sensor_msgs/RegionOfInterest as (x_offset, y_offset, height, width, do_rectify)."""
    x, y, h, w = (int(field(roi, n)) for n in ("x_offset", "y_offset", "height", "width"))
    return x, y, h, w, bool(field(roi, "do_rectify"))


def field(msg: Any, name: str) -> Any:
    """A message field, from a dict or from an object with attributes (decoded or rclpy messages)."""
    return msg[name] if isinstance(msg, dict) else getattr(msg, name)

"""Frame sources behind one URI-like argument: cameras, device nodes, files, RTSP, GStreamer, image folders.

`open_source("0")` is camera 0, `/dev/video0` a V4L2 device, `rtsp://...` (also rtmp/http) a network
stream, `gst:<pipeline>` a GStreamer pipeline ending in appsink, `csi://0` a Jetson CSI camera (through
nvarguscamerasrc), `robot.mcap` (or a rosbag2 folder) an image topic of a ROS 2 bag (see
simokit.runtime.ros.bag), and anything else a video file or a folder of images. Sources are not opened
until `open()`; OpenCV is imported only then, so the module stays importable on machines without it.
Source itself is in simokit.runtime.source_base.
Finite sources (files, folders) can also be counted and skipped through: simokit.runtime.sampling reads
a chosen subset of their frames by index, as calibration does.
"""

from __future__ import annotations

import re
from pathlib import Path

# Re-exported (`X as X`): callers import every source type from here.
from simokit.runtime.capture import NETWORK_SCHEMES, csi_pipeline
from simokit.runtime.capture import CaptureSource as CaptureSource
from simokit.runtime.folder_source import IMAGE_SUFFIXES as IMAGE_SUFFIXES
from simokit.runtime.folder_source import FolderSource as FolderSource
from simokit.runtime.source_base import Source as Source
from simokit.runtime.source_base import StreamError as StreamError
from simokit.runtime.source_base import require_cv2 as require_cv2


def open_source(
    uri: str | int | Source, width: int = 0, height: int = 0, fps: float = 0.0, topic: str | None = None
) -> Source:
    """Parse a URI into an (unopened) Source; width/height/fps are requests to cameras, topic to bags."""
    if isinstance(uri, Source):
        return uri
    text = str(uri).strip()
    if text.lower().endswith(".mcap") or (Path(text).expanduser() / "metadata.yaml").is_file():
        from simokit.runtime.ros.bag import BagSource

        return BagSource(text, Path(text).expanduser(), topic)
    if topic:
        raise StreamError(f"--topic {topic}: only ROS 2 bags (.mcap) have topics; '{text}' is not one")
    request = (width, height, fps)
    if text.isdigit():
        return CaptureSource(text, int(text), "CAP_ANY", True, request)
    if text.startswith("v4l2://"):
        text = text[len("v4l2://") :]
    if text.startswith("/dev/"):
        match = re.fullmatch(r"/dev/video(\d+)", text)
        return CaptureSource(text, int(match.group(1)) if match else text, "CAP_V4L2", True, request)
    if text.startswith("csi://"):
        return CaptureSource(text, csi_pipeline(text, width, height, fps), "CAP_GSTREAMER", True)
    if text.startswith("gst:"):
        return CaptureSource(text, text[len("gst:") :].strip(), "CAP_GSTREAMER", True)
    if text.startswith(NETWORK_SCHEMES):
        return CaptureSource(text, text, "CAP_FFMPEG", True)
    path = Path(text[len("file://") :] if text.startswith("file://") else text).expanduser()
    if path.is_dir():
        return FolderSource(text, path)
    if path.is_file():
        return CaptureSource(text, str(path), "CAP_ANY", False)
    raise StreamError(
        f"cannot open source '{text}': no such file or folder (cameras: 0 or /dev/video0; "
        "streams: rtsp://...; GStreamer: gst:<pipeline>; ROS 2 bags: robot.mcap)"
    )

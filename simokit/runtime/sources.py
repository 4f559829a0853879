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

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from simokit.errors import DataError
from simokit.runtime.source_base import Source, StreamError, require_cv2

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
NETWORK_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")
# Network reads otherwise block for FFmpeg's default (~30 s) when a stream stalls, delaying reconnects.
NETWORK_TIMEOUT_MS = 5000


class CaptureSource(Source):
    """Anything cv2.VideoCapture opens: camera index, device path, file, network URL or GStreamer pipeline."""

    def __init__(
        self, uri: str, target: int | str, api: str, live: bool, request: tuple[int, int, float] = (0, 0, 0.0)
    ) -> None:
        self.uri, self.target, self.api, self.live = uri, target, api, live
        self.request = request  # (width, height, fps) asked of a camera; 0 = driver default
        self._cap: Any = None

    def open(self) -> None:
        """Open through OpenCV with the backend this URI needs and apply camera requests."""
        cv2 = require_cv2(f"source '{self.uri}'")
        api = getattr(cv2, self.api)
        if self.api == "CAP_GSTREAMER" and not cv2.videoio_registry.hasBackend(api):
            raise StreamError(
                f"cannot open source '{self.uri}': this OpenCV has no GStreamer support (pip wheels lack "
                "it); use the system OpenCV (JetPack's on a Jetson)"
            )
        params: list[int] = []
        if self.uri.startswith(NETWORK_SCHEMES):
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, NETWORK_TIMEOUT_MS]
            params += [cv2.CAP_PROP_READ_TIMEOUT_MSEC, NETWORK_TIMEOUT_MS]
        self.close()
        cap = cv2.VideoCapture(self.target, api, params)
        if not cap.isOpened():
            raise StreamError(f"cannot open source '{self.uri}': {self._hint()}")
        self._cap = cap
        if isinstance(self.target, int) or self.uri.startswith("/dev/"):
            self._apply_requests(cv2)
        self.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)

    def _apply_requests(self, cv2: Any) -> None:
        width, height, fps = self.request
        self._cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # a hint many drivers ignore; the stream drops anyway
        for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, width), (cv2.CAP_PROP_FRAME_HEIGHT, height)):
            if value:
                self._cap.set(prop, value)
        if fps:
            self._cap.set(cv2.CAP_PROP_FPS, fps)
        got = (self._cap.get(cv2.CAP_PROP_FRAME_WIDTH), self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if (width and got[0] != width) or (height and got[1] != height):
            log.warning("%s: asked for %dx%d, the camera gives %dx%d", self.uri, width, height, *got)

    def _hint(self) -> str:
        if isinstance(self.target, int) or self.uri.startswith("/dev/"):
            return "no such camera or it is busy (check the index/device and that no other program holds it)"
        if self.live:
            return "the stream did not answer (check the URL, credentials and network)"
        return "not a video OpenCV can decode (check the file and its codec)"

    def read(self) -> np.ndarray | None:
        """Next frame, or None at end of file / when the device or stream dropped."""
        if self._cap is None:
            return None
        ok, frame = self._cap.read()
        return frame if ok and frame is not None else None

    def skip(self) -> bool:
        """Grab the next frame without converting it; False at the end."""
        return self._cap is not None and bool(self._cap.grab())

    def close(self) -> None:
        """Release the capture."""
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class FolderSource(Source):
    """Every image in a folder, in path order (not live: nothing dropped).

    `recursive` also reads its subfolders. `strict` (calibration data) reads each file as stored and
    refuses one that cannot be read or is not 8-bit 3-channel colour, instead of skipping or converting it.
    """

    live = False

    def __init__(self, uri: str, folder: Path, recursive: bool = False, strict: bool = False) -> None:
        self.uri, self.folder, self.recursive, self.strict = uri, folder, recursive, strict
        self.files: list[Path] = []
        self.unreadable: list[Path] = []
        self.delivered = 0
        self._next = 0
        self._warned = False

    def open(self) -> None:
        """List the folder's images; an empty folder is an error."""
        found = self.folder.rglob("*") if self.recursive else self.folder.iterdir()
        self.files = sorted(p for p in found if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not self.files:
            raise StreamError(
                f"cannot open source '{self.uri}': no images ({', '.join(IMAGE_SUFFIXES)}) found; "
                "point it at a folder of images"
            )
        self._next = self.delivered = 0
        self.unreadable, self._warned = [], False

    def read(self) -> np.ndarray | None:
        """Next readable image, None after the last.

        Unreadable files are skipped and named in one warning at the end; a folder in which no
        image at all could be read raises StreamError (a run of 0 frames would look like success).
        """
        cv2 = require_cv2(f"source '{self.uri}'")
        while self._next < len(self.files):
            path = self.files[self._next]
            self._next += 1
            image = _read_strict(cv2, path) if self.strict else cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is not None:
                self.delivered += 1
                return np.asarray(image)
            self.unreadable.append(path)
        self._end_of_folder()
        return None

    @property
    def position(self) -> int:
        """How many files read() and skip() have consumed (unreadable ones included)."""
        return self._next

    def _end_of_folder(self) -> None:
        self._warn_unreadable()
        if self.unreadable and not self.delivered:
            raise StreamError(
                f"source '{self.uri}': none of the {len(self.unreadable)} image file(s) read could be "
                f"decoded (first: {self.unreadable[0].name}); check the files"
            )

    def _warn_unreadable(self) -> None:
        if self.unreadable and not self._warned:
            self._warned = True
            names = ", ".join(p.name for p in self.unreadable[:10])
            more = f" and {len(self.unreadable) - 10} more" if len(self.unreadable) > 10 else ""
            log.warning(
                "%s: %d unreadable image(s) skipped: %s%s", self.uri, len(self.unreadable), names, more
            )

    def skip(self) -> bool:
        """Move past the next file without reading it."""
        if self._next >= len(self.files):
            return False
        self._next += 1
        return True

    def count(self) -> int:
        """Number of image files listed by open()."""
        return len(self.files)

    def close(self) -> None:
        """Name the unreadable files skipped so far (once), when reading stopped before the end."""
        self._warn_unreadable()


def _read_strict(cv2: Any, path: Path) -> np.ndarray | None:
    """The image as stored (no EXIF rotation, no conversion), None when unreadable.

    DataError unless it is 8-bit BGR colour: converting would calibrate on other data than the camera's.
    """
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        return None
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels != 3 or image.dtype != np.uint8:
        raise DataError(
            f"{path}: {channels}-channel {image.dtype} image; calibration needs 8-bit 3-channel colour "
            "images like the camera's (convert it or remove it)"
        )
    return np.asarray(image)


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
        return CaptureSource(text, _csi_pipeline(text, width, height, fps), "CAP_GSTREAMER", True)
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


def _csi_pipeline(uri: str, width: int, height: int, fps: float) -> str:
    """The usual Jetson CSI pipeline: nvarguscamerasrc -> NVMM -> BGR appsink that drops stale frames."""
    sensor = uri[len("csi://") :] or "0"
    if not sensor.isdigit():
        raise StreamError(f"cannot open source '{uri}': expected csi://<sensor id>, e.g. csi://0")
    w, h, r = width or 1280, height or 720, int(fps or 30)
    return (
        f"nvarguscamerasrc sensor-id={sensor} ! video/x-raw(memory:NVMM),width={w},height={h},"
        f"framerate={r}/1 ! nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR "
        "! appsink drop=true max-buffers=1"
    )

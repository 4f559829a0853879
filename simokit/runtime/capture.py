"""OpenCV capture sources: cameras, V4L2 devices, video files, network streams, GStreamer pipelines."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from simokit.runtime.source_base import Source, StreamError, require_cv2

log = logging.getLogger("simokit.runtime.sources")
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


def csi_pipeline(uri: str, width: int, height: int, fps: float) -> str:
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

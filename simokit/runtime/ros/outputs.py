"""Engine outputs as ROS 2 messages, stamped with their input's header; the newest-frame-only slot.

Per task, by its kind in the task table: class scores (or labels) become `<task>/labels` (mono8 class
ids) and `<task>/color` (rgb8 in the bundle's palette); vectors `<task>` 32FC3 (normals: unit vectors
in the camera frame); every other map `<task>` 32FC1 (depth: metres). `camera_info` follows the
outputs' size. The label map is one std_msgs/String of JSON, published latched.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import numpy as np

from simokit.runtime.overlay import colour_of, task_map
from simokit.runtime.ros.convert import image_msg
from simokit.runtime.ros.header import FrameHeader
from simokit.runtime.ros.msgdefs import CAMERA_INFO, IMAGE, STRING
from simokit.runtime.source_base import require_cv2

Message = tuple[str, str, dict[str, Any]]  # (topic relative to the output namespace, ROS type, fields)
LABEL_MAP_TOPIC = "seg/label_map"


def palette_array(palette: tuple[tuple[int, int, int], ...] | list[Any]) -> np.ndarray:
    """The bundle's RGB palette as (256, 3) uint8 (a fixed random one where the bundle has none)."""
    rng = np.random.default_rng(0)  # the same fallback colours as the stream views
    table = rng.integers(0, 256, (256, 3)).astype(np.uint8)
    if len(palette):
        table[: len(palette)] = np.asarray(palette, np.uint8)[:256]
    return table


def output_messages(
    outputs: dict[str, np.ndarray],
    header: FrameHeader,
    palette: np.ndarray,
    size: tuple[int, int] | None = None,
    tasks: tuple[str, ...] = (),
) -> list[Message]:
    """Messages for one frame's outputs, at `size` (width, height; default: the outputs' own).

    `tasks` limits the outputs published (all when empty). camera_info is included when the input
    frame had one and any image is published, scaled to the outputs' size.
    """
    head = header.to_msg()
    messages: list[Message] = []
    out_size: tuple[int, int] | None = None
    for task, value in outputs.items():
        if tasks and task not in tasks:
            continue
        colouriser = colour_of(task)
        m = task_map(colouriser, np.asarray(value))
        if size is not None and (m.shape[1], m.shape[0]) != size:
            m = _resize(m, size, colouriser.labels)
        out_size = (m.shape[1], m.shape[0])
        if colouriser.labels:
            labels = m.astype(np.uint8)
            messages.append((f"{task}/labels", IMAGE, image_msg(labels, "mono8", head)))
            messages.append((f"{task}/color", IMAGE, image_msg(palette[labels], "rgb8", head)))
        else:
            encoding = "32FC3" if colouriser.vectors else "32FC1"
            messages.append((task, IMAGE, image_msg(m.astype(np.float32), encoding, head)))
    if header.camera_info is not None and out_size is not None:
        info = header.camera_info.scaled(*out_size)
        messages.append(("camera_info", CAMERA_INFO, info.to_msg(head)))
    return messages


def output_topics(tasks: tuple[str, ...]) -> list[tuple[str, str]]:
    """(topic, ROS type) of everything output_messages() can publish for `tasks`, camera_info included."""
    topics: list[tuple[str, str]] = []
    for task in tasks:
        parts = ("labels", "color") if colour_of(task).labels else ("",)
        topics += [(f"{task}/{part}".rstrip("/"), IMAGE) for part in parts]
    return [*topics, ("camera_info", CAMERA_INFO)]


def _resize(m: np.ndarray, size: tuple[int, int], labels: bool) -> np.ndarray:
    """One map at `size`: labels nearest (never invent classes), values linear, unit vectors renormalised."""
    cv2 = require_cv2("resizing outputs")
    if labels:
        return np.asarray(cv2.resize(m.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST))
    out = np.asarray(cv2.resize(m.astype(np.float32), size, interpolation=cv2.INTER_LINEAR))
    if out.ndim == 3:
        out = out / np.maximum(np.linalg.norm(out, axis=-1, keepdims=True), 1e-6)
    return out


def label_map_message(classes: tuple[str, ...], palette: np.ndarray) -> Message:
    """The class names and their RGB colours as a std_msgs/String of JSON (id = list index)."""
    names = list(classes)
    data = {"classes": names, "palette": palette[: len(names)].tolist(), "encoding": "mono8 class ids"}
    return (LABEL_MAP_TOPIC, STRING, {"data": json.dumps(data)})


class NewestSlot:
    """A one-item hand-over between threads: put() replaces an unread item (counted as dropped).

    Inference slower than the camera then always works on the newest frame, and latency cannot grow.
    """

    def __init__(self) -> None:
        self._item: Any = None
        self._full = False
        self._cond = threading.Condition()
        self.dropped = 0

    def put(self, item: Any) -> bool:
        """Offer an item; True when it replaced one that was never taken."""
        with self._cond:
            replaced, self._item, self._full = self._full, item, True
            self.dropped += replaced
            self._cond.notify()
        return replaced

    def get(self, timeout: float | None = None) -> Any:
        """The newest item, waiting up to `timeout` seconds; None when none came."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._full, timeout):
                return None
            item, self._item, self._full = self._item, None, False
            return item

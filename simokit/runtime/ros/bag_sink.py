"""`simokit run ... --record out.mcap`: the outputs as a ROS 2 bag that `ros2 bag play` and Foxglove open.

Topics under `/simokit` (the node's `~`): per task as simokit.runtime.ros.outputs lays them out, plus
`camera_info` when the input had one and the latched label map. Every message carries its input
frame's header and is logged at the input's log time, so the output bag lines up with the input bag.
Frames from a camera (no recorded header) are stamped with the wall-clock time of their capture.
The file appears, complete, only when the stream ends.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from simokit.runtime.bundle import BundleMeta
from simokit.runtime.ros.bag import INSTALL_HINT
from simokit.runtime.ros.header import NANOS, FrameHeader
from simokit.runtime.ros.msgdefs import schema_text
from simokit.runtime.ros.outputs import Message, label_map_message, output_messages, palette_array
from simokit.runtime.source_base import StreamError
from simokit.runtime.stream_types import Frame

NAMESPACE = "/simokit"
DEFAULT_FRAME_ID = "camera"


def _qos(reliability: int, durability: int) -> str:
    """rosbag2's offered_qos_profiles YAML (1 = reliable; durability 1 = transient local, 2 = volatile)."""
    never = "\n    sec: 2147483647\n    nsec: 4294967295"
    return (
        f"- history: 3\n  depth: 0\n  reliability: {reliability}\n  durability: {durability}\n"
        f"  deadline:{never}\n  lifespan:{never}\n  liveliness: 1\n"
        f"  liveliness_lease_duration:{never}\n  avoid_ros_namespace_conventions: false\n"
    )


RELIABLE, LATCHED = _qos(1, 2), _qos(1, 1)


class BagSink:
    """Writes each frame's outputs as stamped ROS 2 messages into an MCAP bag."""

    def __init__(self, path: str | Path, meta: BundleMeta, namespace: str = NAMESPACE) -> None:
        try:
            from mcap.writer import Writer
            from mcap_ros2._dynamic import serialize_dynamic
        except ImportError:
            raise StreamError(
                f"--record {path}: writing bags needs mcap-ros2-support: {INSTALL_HINT}"
            ) from None
        self.path, self.meta, self.namespace = Path(path), meta, namespace.rstrip("/")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self.palette = palette_array(meta.palette)
        self._serialize = serialize_dynamic
        self._file: Any = open(self.tmp, "wb")  # noqa: SIM115 (closed in close())
        self._writer = Writer(self._file)
        self._writer.start(profile="ros2", library="simokit")
        self._schemas: dict[str, tuple[int, Any]] = {}
        self._channels: dict[str, int] = {}
        self.frames = 0

    def write(self, frame: Frame, outputs: dict[str, np.ndarray]) -> None:
        """Write one frame's messages, stamped with its header (and the label map before the first)."""
        header = frame.header or _capture_header(frame)
        log_time = header.log_time or header.stamp_ns
        if not self.frames and self.meta.classes:
            self._write(label_map_message(self.meta.classes, self.palette), log_time, LATCHED)
        for message in output_messages(outputs, header, self.palette):
            self._write(message, log_time, RELIABLE)
        self.frames += 1

    def _write(self, message: Message, log_time: int, qos: str) -> None:
        topic, datatype, fields = message
        if datatype not in self._schemas:
            text = schema_text(datatype)
            schema_id = self._writer.register_schema(datatype, "ros2msg", text.encode())
            self._schemas[datatype] = (schema_id, self._serialize(datatype, text)[datatype])
        schema_id, encode = self._schemas[datatype]
        name = f"{self.namespace}/{topic}"
        if name not in self._channels:
            metadata = {"offered_qos_profiles": qos}
            self._channels[name] = self._writer.register_channel(name, "cdr", schema_id, metadata)
        self._writer.add_message(self._channels[name], log_time, encode(fields), log_time)

    def close(self) -> None:
        """Finish the bag and move it into place (nothing is written for zero frames)."""
        if self._file is None:
            return
        self._writer.finish()
        self._file.close()
        self._file = None
        if self.frames:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink()


def _capture_header(frame: Frame) -> FrameHeader:
    """A header for a frame with none: the wall-clock time at which it was captured."""
    stamp = time.time_ns() - int((time.perf_counter() - frame.timestamp) * NANOS)
    return FrameHeader(stamp // NANOS, stamp % NANOS, DEFAULT_FRAME_ID)

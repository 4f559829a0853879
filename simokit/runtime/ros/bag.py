"""ROS 2 bags (MCAP) as a frame source: one image topic's frames in log-time order, headers kept.

`open_source("robot.mcap", topic="/camera/image_raw")` (or the rosbag2 folder holding that file) reads
sensor_msgs/Image or CompressedImage messages; each frame's header (stamp, frame_id), log time and the
latest camera_info published next to the image topic (`<namespace>/camera_info`) travel with it as
Source.header. The bag is finite: the
stream keeps every frame in order, and calibration can count and sample it like a video.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from simokit.runtime.ros.convert import to_bgr
from simokit.runtime.ros.header import CameraInfo, FrameHeader
from simokit.runtime.ros.msgdefs import CAMERA_INFO, IMAGE_TYPES
from simokit.runtime.source_base import Source, StreamError

INSTALL_HINT = "pip install 'simokit[ros]'"


def require_mcap(what: str) -> tuple[Any, Any]:
    """(mcap.reader.make_reader, mcap_ros2.decoder.DecoderFactory), or StreamError with the install line."""
    try:
        from mcap.reader import make_reader
        from mcap_ros2.decoder import DecoderFactory
    except ImportError:
        raise StreamError(f"{what} needs mcap and mcap-ros2-support: {INSTALL_HINT}") from None
    return make_reader, DecoderFactory


def camera_info_topic(image_topic: str) -> str:
    """Where image_transport publishes an image topic's camera_info: `<namespace>/camera_info`."""
    base = image_topic.removesuffix("/compressed")
    return base.rpartition("/")[0] + "/camera_info"


def bag_file(path: Path, uri: str) -> Path:
    """The MCAP file of `path`: the file itself, or the one .mcap file of a rosbag2 folder."""
    if not path.is_dir():
        if not path.is_file():
            raise StreamError(f"cannot open source '{uri}': no such bag")
        return path
    files = sorted(path.glob("*.mcap"))
    if len(files) != 1:
        found = (
            ", ".join(f.name for f in files)
            or "no .mcap file (sqlite3 bags: convert with `ros2 bag convert`)"
        )
        raise StreamError(
            f"cannot open source '{uri}': a rosbag2 folder with one .mcap file is read; found {found}"
        )
    return files[0]


class BagSource(Source):
    """The frames of one image topic of an MCAP bag (not live: nothing dropped, order kept)."""

    live = False

    def __init__(self, uri: str, path: Path, topic: str | None = None) -> None:
        self.uri, self.path, self.topic = uri, path, topic
        self.info_topic = ""
        self._file: Any = None
        self._messages: Any = None
        self._decoders: dict[int, Any] = {}
        self._factory: Any = None
        self._count = 0
        self._info: CameraInfo | None = None

    def open(self) -> None:
        """Open the bag, check the topic, count its messages and find its camera_info."""
        make_reader, factory = require_mcap(f"source '{self.uri}'")
        self.close()
        self._factory, self._decoders = factory(), {}
        path = bag_file(self.path, self.uri)
        try:
            self._file = open(path, "rb")  # noqa: SIM115 (kept open until close())
            reader = make_reader(self._file)
            summary = reader.get_summary()
        except Exception as exc:  # the mcap library raises its own types for damaged files
            self.close()
            raise StreamError(f"cannot open source '{self.uri}': not a readable MCAP file ({exc})") from None
        if summary is None:
            self.close()
            raise StreamError(f"cannot open source '{self.uri}': the bag has no summary (try `mcap recover`)")
        topics = _topics(summary)
        self.topic = self._choose_topic(topics)
        self._count = _message_count(summary, self.topic)
        info = camera_info_topic(self.topic)
        self.info_topic = info if topics.get(info, ("", 0))[0] == CAMERA_INFO else ""
        wanted = [self.topic] + ([self.info_topic] if self.info_topic else [])
        self._info = self._first_info(reader) if self.info_topic else None
        self.fps = self._rate(reader)
        self._messages = reader.iter_messages(topics=wanted, log_time_order=True)
        self.header = None

    def _rate(self, reader: Any) -> float:
        """Messages per second on the image topic, from its first and last log times (0 if unknown)."""
        if self._count < 2:
            return 0.0
        ends = [next(reader.iter_messages(topics=[self.topic], reverse=r), None) for r in (False, True)]
        if ends[0] is None or ends[1] is None or ends[1][2].log_time <= ends[0][2].log_time:
            return 0.0
        return (self._count - 1) * 1e9 / (ends[1][2].log_time - ends[0][2].log_time)

    def _choose_topic(self, topics: dict[str, tuple[str, int]]) -> str:
        images = {t: v for t, v in topics.items() if v[0] in IMAGE_TYPES}
        if self.topic in images or (self.topic is None and len(images) == 1):
            return self.topic or next(iter(images))
        listed = ", ".join(
            f"{t} ({kind.rpartition('/')[2]}, {n} messages)" for t, (kind, n) in sorted(images.items())
        )
        what = f"no image topic '{self.topic}'" if self.topic else "several image topics; pass --topic"
        what = what if images else "no image topic (sensor_msgs Image or CompressedImage)"
        raise StreamError(
            f"source '{self.path}' has {what}" + (f"; its image topics: {listed}" if listed else "")
        )

    def _first_info(self, reader: Any) -> CameraInfo | None:
        for schema, channel, message in reader.iter_messages(topics=[self.info_topic], log_time_order=True):
            return CameraInfo.from_msg(self._decode(schema, channel, message))
        return None

    def _decode(self, schema: Any, channel: Any, message: Any) -> Any:
        decoder = self._decoders.get(channel.id)
        if decoder is None:
            decoder = self._factory.decoder_for(channel.message_encoding, schema)
            if decoder is None:
                raise StreamError(f"source '{self.uri}': topic {channel.topic} is not CDR-encoded ROS 2")
            self._decoders[channel.id] = decoder
        return decoder(message.data)

    def _next(self) -> tuple[Any, Any, Any] | None:
        """The next message of the image topic, taking in camera_info messages on the way."""
        for schema, channel, message in self._messages or ():
            if channel.topic != self.info_topic:
                return schema, channel, message
            self._info = CameraInfo.from_msg(self._decode(schema, channel, message))
        return None

    def read(self) -> np.ndarray | None:
        """Next frame as BGR uint8, with its header in self.header; None after the last."""
        item = self._next()
        if item is None:
            self.header = None
            return None
        schema, channel, message = item
        msg = self._decode(schema, channel, message)
        self.header = FrameHeader.from_msg(msg.header, message.log_time, self._info)
        return to_bgr(schema.name, msg)

    def skip(self) -> bool:
        """Move past the next frame without decoding its pixels."""
        self.header = None
        return self._next() is not None

    def count(self) -> int:
        """Messages on the image topic (from the bag's summary)."""
        return self._count

    def close(self) -> None:
        """Close the file."""
        self._messages = None
        if self._file is not None:
            self._file.close()
            self._file = None


def _topics(summary: Any) -> dict[str, tuple[str, int]]:
    """topic -> (ROS type, message count) for every channel of the bag."""
    counts = summary.statistics.channel_message_counts if summary.statistics else {}
    out = {}
    for channel in summary.channels.values():
        schema = summary.schemas.get(channel.schema_id)
        out[channel.topic] = (schema.name if schema else "", counts.get(channel.id, 0))
    return out


def _message_count(summary: Any, topic: str) -> int:
    counts = summary.statistics.channel_message_counts if summary.statistics else {}
    return sum(counts.get(c.id, 0) for c in summary.channels.values() if c.topic == topic)

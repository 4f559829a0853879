"""ROS 2 test helpers: messages through real CDR, bags written with mcap-ros2-support, YUV packing."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from simokit.runtime.ros.msgdefs import schema_text


def cdr_round_trip(datatype: str, fields: dict[str, Any]) -> Any:
    """Serialise `fields` as `datatype` to CDR in an in-memory bag and decode it back."""
    from mcap_ros2.writer import Writer

    buf = io.BytesIO()
    writer = Writer(buf)
    writer.write_message("/t", writer.register_msgdef(datatype, schema_text(datatype)), fields, log_time=1)
    writer.finish()
    buf.seek(0)
    ((_, _, decoded, _),) = _decoded_messages(buf)
    return decoded


def write_bag(path: Path, messages: list[tuple[str, str, dict[str, Any], int]]) -> Path:
    """A bag of (topic, ROS type, fields, log time) messages."""
    from mcap_ros2.writer import Writer

    with open(path, "wb") as f:
        writer = Writer(f)
        schemas: dict[str, Any] = {}
        for topic, datatype, fields, log_time in messages:
            if datatype not in schemas:
                schemas[datatype] = writer.register_msgdef(datatype, schema_text(datatype))
            writer.write_message(topic, schemas[datatype], fields, log_time=log_time)
        writer.finish()
    return path


def read_bag(path: Path) -> list[tuple[str, str, Any, int]]:
    """Every message of a bag as (topic, ROS type, decoded message, log time), in log-time order."""
    with open(path, "rb") as f:
        return _decoded_messages(f)


def _decoded_messages(stream: Any) -> list[tuple[str, str, Any, int]]:
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    reader = make_reader(stream, decoder_factories=[DecoderFactory()])
    return [
        (channel.topic, schema.name if schema else "", decoded, message.log_time)
        for schema, channel, message, decoded in reader.iter_decoded_messages(log_time_order=True)
    ]


def bgr_to_yuv422(bgr: np.ndarray, order: str = "uyvy") -> np.ndarray:
    """Pack a BGR frame (even width) as (H, W, 2) YUV 4:2:2 bytes, BT.601 limited range like cameras send."""
    b, g, r = (bgr[..., i].astype(np.float32) for i in range(3))
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
    u2 = (u[:, 0::2] + u[:, 1::2]) / 2
    v2 = (v[:, 0::2] + v[:, 1::2]) / 2
    h, w = y.shape
    out = np.empty((h, w, 2), np.float32)
    if order == "uyvy":
        out[:, 0::2, 0], out[:, 1::2, 0], out[..., 1] = u2, v2, y
    else:  # yuyv
        out[..., 0], out[:, 0::2, 1], out[:, 1::2, 1] = y, u2, v2
    return np.clip(np.round(out), 0, 255).astype(np.uint8)

"""The ROS-free core through real CDR: every image encoding, compressed frames, camera_info, outputs."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

pytest.importorskip("mcap_ros2", reason="needs mcap-ros2-support (pip install 'simokit[ros]')")

import cv2
from ros_helpers import bgr_to_yuv422, cdr_round_trip

from simokit.runtime.ros.convert import image_array, image_msg, to_bgr
from simokit.runtime.ros.header import CameraInfo, FrameHeader
from simokit.runtime.ros.msgdefs import CAMERA_INFO, COMPRESSED_IMAGE, IMAGE, STRING
from simokit.runtime.ros.outputs import (
    NewestSlot,
    label_map_message,
    output_messages,
    output_topics,
    palette_array,
)
from simokit.runtime.sources import StreamError

HEADER = FrameHeader(1700000000, 123456789, "camera_optical")
BGR = np.random.default_rng(0).integers(0, 256, (6, 8, 3), dtype=np.uint8)
INFO = CameraInfo(
    8, 6, "plumb_bob", (0.1, -0.2, 0.0, 0.0, 0.01), (4.0, 0, 3.5, 0, 5.0, 2.5, 0, 0, 1),
    (1, 0, 0, 0, 1, 0, 0, 0, 1), (4.0, 0, 3.5, 0.2, 0, 5.0, 2.5, 0, 0, 0, 1, 0), roi=(2, 2, 4, 4, True),
)  # fmt: skip


def _decoded(array: np.ndarray, encoding: str) -> np.ndarray:
    return to_bgr(IMAGE, cdr_round_trip(IMAGE, image_msg(array, encoding, HEADER.to_msg())))


@pytest.mark.parametrize(
    ("encoding", "array"),
    [
        ("bgr8", BGR),
        ("rgb8", BGR[..., ::-1]),
        ("bgra8", np.dstack([BGR, np.full(BGR.shape[:2], 7, np.uint8)])),
        ("rgba8", np.dstack([BGR[..., ::-1], np.full(BGR.shape[:2], 7, np.uint8)])),
    ],
)
def test_colour_encodings_decode_to_the_same_bgr_frame(encoding: str, array: np.ndarray) -> None:
    np.testing.assert_array_equal(_decoded(array, encoding), BGR)


def test_mono_encodings_fill_three_channels() -> None:
    mono = BGR[..., 1]
    np.testing.assert_array_equal(_decoded(mono, "mono8"), np.dstack([mono] * 3))
    wide = mono.astype(np.uint16) * 256 + 255
    np.testing.assert_array_equal(_decoded(wide, "mono16"), np.dstack([mono] * 3))


def test_big_endian_rows_with_padding() -> None:
    wide = BGR[..., 0].astype(np.uint16) * 256
    padded = np.zeros((6, 20), np.uint8)  # step 20 for 8 pixels of 2 bytes: 4 bytes of padding per row
    padded[:, :16] = wide.astype(">u2").view(np.uint8).reshape(6, 16)
    msg = {"height": 6, "width": 8, "encoding": "mono16", "is_bigendian": 1, "step": 20}
    msg["data"] = padded.tobytes()
    np.testing.assert_array_equal(image_array(cdr_round_trip(IMAGE, msg | {"header": HEADER.to_msg()})), wide)


@pytest.mark.parametrize(
    ("encoding", "order", "code"), [("yuv422", "uyvy", "UYVY"), ("yuv422_yuy2", "yuyv", "YUY2")]
)
def test_yuv422_both_byte_orders(encoding: str, order: str, code: str) -> None:
    pairs = np.repeat(BGR[:, ::2], 2, axis=1)  # pixel pairs share their chroma, so these survive exactly
    packed = bgr_to_yuv422(pairs, order)
    got = _decoded(packed, encoding)
    np.testing.assert_array_equal(got, cv2.cvtColor(packed, getattr(cv2, f"COLOR_YUV2BGR_{code}")))
    assert np.abs(got.astype(int) - pairs).max() <= 3  # rounding to 8-bit YUV only


@pytest.mark.parametrize(("fmt", "ext"), [("png", ".png"), ("rgb8; jpeg compressed bgr8", ".jpg")])
def test_compressed_images(fmt: str, ext: str) -> None:
    data = cv2.imencode(ext, BGR)[1].tobytes()
    msg = cdr_round_trip(COMPRESSED_IMAGE, {"header": HEADER.to_msg(), "format": fmt, "data": data})
    np.testing.assert_array_equal(
        to_bgr(COMPRESSED_IMAGE, msg), cv2.imdecode(np.frombuffer(data, np.uint8), 1)
    )


def test_unsupported_and_broken_images_are_named() -> None:
    with pytest.raises(StreamError, match="encoding 'bayer_rggb8' is not supported; use one of rgb8, bgr8"):
        _decoded_raw = {"encoding": "bayer_rggb8", "height": 1, "width": 1, "step": 1, "is_bigendian": 0}
        image_array(_decoded_raw | {"data": b"\0"})
    with pytest.raises(StreamError, match="8 bytes with step 2, expected at least 3 per row"):
        image_array(
            {"encoding": "rgb8", "height": 4, "width": 1, "step": 2, "is_bigendian": 0, "data": b"\0" * 8}
        )
    with pytest.raises(StreamError, match="could not be decoded as JPEG or PNG"):
        to_bgr(COMPRESSED_IMAGE, {"format": "jpeg", "data": b"not an image"})
    with pytest.raises(StreamError, match="is a depth map"):
        to_bgr(COMPRESSED_IMAGE, {"format": "16UC1; compressedDepth png", "data": b""})


def test_header_and_camera_info_survive_cdr() -> None:
    msg = cdr_round_trip(CAMERA_INFO, INFO.to_msg(HEADER.to_msg()))
    assert CameraInfo.from_msg(msg) == INFO
    assert FrameHeader.from_msg(msg.header) == HEADER
    assert HEADER.stamp_ns == 1700000000123456789


def test_camera_info_scales_like_image_proc_resize() -> None:
    half = INFO.scaled(4, 3)
    assert (half.width, half.height) == (4, 3)
    assert half.k == (2.0, 0, 1.75, 0, 2.5, 1.25, 0, 0, 1)
    assert half.p == (2.0, 0, 1.75, 0.1, 0, 2.5, 1.25, 0, 0, 0, 1, 0)
    assert half.roi == (1, 1, 2, 2, True) and half.d == INFO.d and half.r == INFO.r


def test_outputs_become_stamped_images_per_task_kind() -> None:
    rng = np.random.default_rng(1)
    seg = rng.normal(size=(11, 6, 8)).astype(np.float32)
    depth = rng.uniform(0.5, 9, (1, 6, 8)).astype(np.float32)
    normal = rng.normal(size=(3, 6, 8)).astype(np.float32)
    palette = palette_array([(10, 20, 30), (40, 50, 60)])
    header = FrameHeader(HEADER.sec, HEADER.nanosec, HEADER.frame_id, camera_info=INFO)
    messages = output_messages({"seg": seg, "depth": depth, "normal": normal}, header, palette)
    assert [(t, d) for t, d, _ in messages] == [
        ("seg/labels", IMAGE), ("seg/color", IMAGE), ("depth", IMAGE), ("normal", IMAGE),
        ("camera_info", CAMERA_INFO),
    ]  # fmt: skip
    decoded = {topic: cdr_round_trip(kind, fields) for topic, kind, fields in messages}
    labels = seg.argmax(0)
    assert [decoded[t].encoding for t in ("seg/labels", "seg/color", "depth", "normal")] == [
        "mono8", "rgb8", "32FC1", "32FC3",
    ]  # fmt: skip
    np.testing.assert_array_equal(image_array(decoded["seg/labels"]), labels)
    np.testing.assert_array_equal(image_array(decoded["seg/color"]), palette[labels])
    np.testing.assert_array_equal(image_array(decoded["depth"]), depth[0])
    np.testing.assert_array_equal(image_array(decoded["normal"]), np.moveaxis(normal, 0, -1))
    assert all(FrameHeader.from_msg(m.header) == HEADER for m in decoded.values())
    assert CameraInfo.from_msg(decoded["camera_info"]) == INFO
    assert output_topics(("seg", "depth", "normal")) == [(t, d) for t, d, _ in messages]


def test_outputs_at_another_size_scale_camera_info_and_keep_unit_normals() -> None:
    normal = np.zeros((3, 6, 8), np.float32)
    normal[2] = -1.0
    header = FrameHeader(1, 2, "cam", camera_info=INFO)
    labels = np.full((6, 8), 3, np.int32)  # a bundle that exports labels
    messages = output_messages({"seg": labels, "normal": normal}, header, palette_array(()), size=(4, 3))
    by_topic = {t: f for t, _, f in messages}
    assert (by_topic["seg/labels"]["width"], by_topic["seg/labels"]["height"]) == (4, 3)
    assert set(np.frombuffer(by_topic["seg/labels"]["data"], np.uint8)) == {3}
    np.testing.assert_allclose(
        np.frombuffer(by_topic["normal"]["data"], np.float32).reshape(3, 4, 3)[..., 2], -1
    )
    assert by_topic["camera_info"]["k"] == list(INFO.scaled(4, 3).k)
    assert output_messages({"normal": normal}, header, palette_array(()), tasks=("seg",)) == []


def test_label_map_is_json_with_names_and_colours() -> None:
    topic, kind, fields = label_map_message(("wall", "floor"), palette_array([(1, 2, 3), (4, 5, 6)]))
    assert (topic, kind) == ("seg/label_map", STRING)
    data = json.loads(cdr_round_trip(STRING, fields).data)
    assert data["classes"] == ["wall", "floor"] and data["palette"] == [[1, 2, 3], [4, 5, 6]]


def test_newest_slot_keeps_only_the_latest_and_counts_drops() -> None:
    slot = NewestSlot()
    assert slot.get(timeout=0.01) is None
    assert slot.put(1) is False and slot.put(2) is True and slot.put(3) is True
    assert slot.get(timeout=0) == 3 and slot.dropped == 2
    got: list[int] = []
    reader = threading.Thread(target=lambda: got.append(slot.get(timeout=5)))
    reader.start()
    slot.put(4)
    reader.join()
    assert got == [4] and slot.dropped == 2

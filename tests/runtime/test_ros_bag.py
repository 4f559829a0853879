"""A recorded bag through `simokit run` into an output bag: encodings, sizes, stamps, frame_ids, values."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("mcap_ros2", reason="needs mcap-ros2-support (pip install 'simokit[ros]')")

import cv2
from ros_helpers import bgr_to_yuv422, read_bag, write_bag
from stream_helpers import write_video

from simokit.cli import main
from simokit.runtime import load, open_source
from simokit.runtime.ros.convert import image_array, image_msg
from simokit.runtime.ros.header import CameraInfo, FrameHeader
from simokit.runtime.ros.msgdefs import CAMERA_INFO, COMPRESSED_IMAGE, IMAGE, STRING
from simokit.runtime.ros.outputs import palette_array
from simokit.runtime.sampling import SampledSource
from simokit.runtime.sources import StreamError

N = 4
START = 1_700_000_000 * 10**9
INFO = CameraInfo(
    64, 48, "plumb_bob", (0.0,) * 5, (50.0, 0, 32, 0, 50.0, 24, 0, 0, 1), p=(50.0, 0, 32, 0) * 3
)


def _camera(name: str, frame: np.ndarray) -> tuple[str, dict[str, Any], np.ndarray]:
    """(ROS type, message fields without header, the BGR frame simokit should decode) for one camera."""
    if name in ("png", "jpeg"):
        data = cv2.imencode(".png" if name == "png" else ".jpg", frame)[1].tobytes()
        return (
            COMPRESSED_IMAGE,
            {"format": name, "data": data},
            cv2.imdecode(np.frombuffer(data, np.uint8), 1),
        )
    if name == "mono8":
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        return IMAGE, image_msg(gray, "mono8", {}), np.dstack([gray] * 3)
    if name == "yuv422":
        packed = bgr_to_yuv422(frame)
        return IMAGE, image_msg(packed, "yuv422", {}), cv2.cvtColor(packed, cv2.COLOR_YUV2BGR_UYVY)
    return IMAGE, image_msg(frame[..., ::-1] if name == "rgb8" else frame, name, {}), frame


CAMERAS = ("rgb8", "bgr8", "mono8", "yuv422", "png", "jpeg")


def _topic(name: str) -> str:
    return f"/{name}_cam/image_raw" + ("/compressed" if name in ("png", "jpeg") else "")


@pytest.fixture(scope="module")
def recorded(
    tmp_path_factory: pytest.TempPathFactory, scene_frames: np.ndarray
) -> tuple[Path, dict[str, Any]]:
    """A bag of six cameras (N frames each, stamps 5 ms before log times), camera_info for two of them.

    Returns the bag and, per topic, the list of (header, log time, expected BGR frame).
    """
    messages, expected = [], {}
    for c, name in enumerate(CAMERAS):
        topic, rows = _topic(name), []
        for i in range(N):
            log_time = START + i * 100_000_000 + c * 1_000_000
            stamp = log_time - 5_000_000
            header = FrameHeader(stamp // 10**9, stamp % 10**9, f"{name}_optical")
            kind, fields, bgr = _camera(name, scene_frames[i * 3 + c % 3])
            messages.append((topic, kind, fields | {"header": header.to_msg()}, log_time))
            if name in ("rgb8", "png"):
                info_topic = f"/{name}_cam/camera_info"
                messages.append((info_topic, CAMERA_INFO, INFO.to_msg(header.to_msg()), log_time + 1))
            rows.append((header, log_time, bgr))
        expected[topic] = rows
    messages.append(("/status", STRING, {"data": "not an image"}, START))
    rgb = [m for m in messages if m[0] == _topic("rgb8")]
    ordered = [m for m in messages if m[0] != _topic("rgb8")] + rgb[::-1]  # one topic written out of order
    return write_bag(tmp_path_factory.mktemp("bag") / "robot.mcap", ordered), expected


@pytest.mark.parametrize("camera", CAMERAS)
def test_bag_replay_writes_stamped_outputs_equal_to_infer(
    camera: str, recorded: tuple[Path, dict[str, Any]], stream_bundle: Path, tmp_path: Path
) -> None:
    bag, expected = recorded
    topic, out = _topic(camera), tmp_path / "out.mcap"
    argv = ["run", str(stream_bundle), "--source", str(bag), "--topic", topic, "--record", str(out)]
    assert main([*argv, "--headless", "--quiet"]) == 0
    messages = read_bag(out)
    by_topic: dict[str, list[Any]] = {}
    for name, kind, msg, log_time in messages:
        by_topic.setdefault(name, []).append((kind, msg, log_time))
    with_info = camera in ("rgb8", "png")
    images = ["/simokit/seg/labels", "/simokit/seg/color", "/simokit/depth", "/simokit/normal"]
    assert sorted(by_topic) == sorted(
        ["/simokit/seg/label_map", *images] + (["/simokit/camera_info"] if with_info else [])
    )
    assert messages[0][0] == "/simokit/seg/label_map"
    label_map = json.loads(by_topic["/simokit/seg/label_map"][0][1].data)
    engine = load(stream_bundle)
    assert label_map["classes"] == list(engine.meta.classes)
    _check_outputs(by_topic, expected[topic], engine, with_info)


def _check_outputs(by_topic: dict[str, list[Any]], rows: list[Any], engine: Any, with_info: bool) -> None:
    palette = palette_array(engine.meta.palette)
    encodings = {"seg/labels": "mono8", "seg/color": "rgb8", "depth": "32FC1", "normal": "32FC3"}
    for name in [*encodings, *(["camera_info"] if with_info else [])]:
        assert len(by_topic[f"/simokit/{name}"]) == N, name
    for i, (header, log_time, bgr) in enumerate(rows):
        outputs = engine.infer(bgr)
        labels = outputs["seg"].argmax(0)
        want = {
            "seg/labels": labels,
            "seg/color": palette[labels],
            "depth": outputs["depth"][0],
            "normal": np.moveaxis(outputs["normal"], 0, -1),
        }
        for name, encoding in encodings.items():
            kind, msg, got_log_time = by_topic[f"/simokit/{name}"][i]
            assert (kind, msg.encoding, got_log_time) == (IMAGE, encoding, log_time), name
            assert FrameHeader.from_msg(msg.header) == header, name
            np.testing.assert_array_equal(image_array(msg), want[name], err_msg=f"frame {i} {name}")
        if with_info:
            kind, msg, _ = by_topic["/simokit/camera_info"][i]
            assert kind == CAMERA_INFO and FrameHeader.from_msg(msg.header) == header
            assert CameraInfo.from_msg(msg) == INFO  # outputs come at the frame's size: the same calibration


def test_label_map_is_latched_and_outputs_reliable(
    recorded: tuple[Path, dict[str, Any]], stream_bundle: Path, tmp_path: Path
) -> None:
    from mcap.reader import make_reader

    out = tmp_path / "out.mcap"
    argv = ["run", str(stream_bundle), "--source", str(recorded[0]), "--topic", _topic("bgr8")]
    assert main([*argv, "--record", str(out), "--headless", "--quiet", "--max-frames", "2"]) == 0
    with open(out, "rb") as f:
        summary = make_reader(f).get_summary()
    assert summary is not None
    qos = {c.topic: c.metadata["offered_qos_profiles"] for c in summary.channels.values()}
    assert "durability: 1" in qos["/simokit/seg/label_map"] and "reliability: 1" in qos["/simokit/depth"]
    assert "durability: 2" in qos["/simokit/depth"]
    assert summary.statistics is not None and summary.statistics.message_count == 1 + 2 * 4


def test_a_missing_topic_lists_the_image_topics(
    recorded: tuple[Path, dict[str, Any]], stream_bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", str(stream_bundle), "--source", str(recorded[0]), "--topic", "/camera/image_raw"]
    assert main([*argv, "--headless", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "has no image topic '/camera/image_raw'; its image topics: " in err
    assert "/bgr8_cam/image_raw (Image, 4 messages)" in err
    assert "/png_cam/image_raw/compressed (CompressedImage, 4 messages)" in err
    assert "/status" not in err and "camera_info" not in err
    with pytest.raises(
        StreamError, match="has several image topics; pass --topic; its image topics: /bgr8_cam"
    ):
        open_source(str(recorded[0])).open()


def test_topic_is_for_bags_only(stream_bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["run", str(stream_bundle), "--source", "0", "--topic", "/camera/image_raw", "--headless"]
    assert main(argv) == 2
    assert "only ROS 2 bags (.mcap) have topics" in capsys.readouterr().err


def test_bags_are_counted_and_sampled_like_videos(recorded: tuple[Path, dict[str, Any]]) -> None:
    bag, expected = recorded
    source = open_source(str(bag), topic=_topic("rgb8"))
    sampled = SampledSource(source, every=2)
    assert sampled.total == N and len(sampled) == 2
    frames = list(sampled.frames([0, 1]))
    for got, (_, _, bgr) in zip(frames, expected[_topic("rgb8")][::2], strict=True):
        np.testing.assert_array_equal(got, bgr)
    source.open()
    stamps = []
    while source.read() is not None:
        assert source.header is not None
        stamps.append(source.header.stamp_ns)
    source.close()
    assert stamps == sorted(stamps) and len(stamps) == N  # log-time order, whatever the order in the file
    assert source.fps == pytest.approx(10.0)


def test_a_rosbag2_folder_is_read_through_its_one_mcap_file(
    recorded: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    folder = tmp_path / "rosbag2_run"
    folder.mkdir()
    (folder / "metadata.yaml").write_text("rosbag2_bagfile_information: {}\n")
    with pytest.raises(
        StreamError, match=r"a rosbag2 folder with one \.mcap file is read; found no \.mcap file"
    ):
        open_source(str(folder), topic=_topic("bgr8")).open()
    shutil.copy(recorded[0], folder / "run_0.mcap")
    source = open_source(str(folder), topic=_topic("bgr8"))
    source.open()
    assert source.count() == N and source.read() is not None
    source.close()


def test_camera_frames_recorded_to_a_bag_carry_their_capture_time(
    stream_bundle: Path, scene_frames: np.ndarray, tmp_path: Path
) -> None:
    video, out = write_video(tmp_path / "in.mp4", scene_frames[:3]), tmp_path / "out.mcap"
    before = time.time_ns()
    argv = ["run", str(stream_bundle), "--source", str(video), "--record", str(out), "--headless", "--quiet"]
    assert main(argv) == 0
    depth = [(msg.header, log_time) for topic, _, msg, log_time in read_bag(out) if topic == "/simokit/depth"]
    stamps = [FrameHeader.from_msg(h).stamp_ns for h, _ in depth]
    assert len(stamps) == 3 and before <= stamps[0] <= stamps[-1] <= time.time_ns()
    assert [log_time for _, log_time in depth] == stamps  # logged at the stamp: no input log time to keep
    assert {h.frame_id for h, _ in depth} == {"camera"}


def test_calib_reads_a_bag_topic_frame_for_frame(
    recorded: tuple[Path, dict[str, Any]], stream_bundle: Path, tmp_path: Path
) -> None:
    """`simokit calib --data robot.mcap --topic T` calibrates on the topic's frames, like a video."""
    import shutil

    from simokit.calib.frames import open_frames
    from simokit.calib.workflow import CalibOptions, calibrate_bundle
    from simokit.errors import DataError

    bag, expected = recorded
    frames = open_frames(str(bag), N, every=1, progress=False, topic=_topic("bgr8"))
    assert frames.description.startswith("bag ") and len(frames) == N
    for got, (_, _, bgr) in zip(frames.frames(range(N)), expected[_topic("bgr8")], strict=True):
        np.testing.assert_array_equal(got, bgr[..., ::-1])  # calibration reads RGB
    with pytest.raises(DataError, match="only ROS 2 bags"):
        open_frames(str(tmp_path), 1, topic="/camera/image_raw")
    bundle = Path(shutil.copytree(stream_bundle, tmp_path / "b"))
    opts = CalibOptions(str(bag), n=N, every=1, topic=_topic("jpeg"), eval="none", progress=False)
    result = calibrate_bundle(bundle, opts)
    assert (bundle / "model.int8.onnx").is_file() and "bag" in result.report

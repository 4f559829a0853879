"""Sources: one URI picks the right capture, files and folders read in order, clear errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from stream_helpers import FakeLive, write_video

from simokit.errors import DataError
from simokit.runtime.sampling import SampledSource
from simokit.runtime.sources import CaptureSource, FolderSource, StreamError, open_source
from simokit.runtime.stream_types import Reconnect


def test_uris_pick_backend_target_and_liveness(tmp_path: Path, scene_frames: np.ndarray) -> None:
    cases = {
        "0": (0, "CAP_ANY", True),
        "/dev/video2": (2, "CAP_V4L2", True),
        "v4l2:///dev/video3": (3, "CAP_V4L2", True),
        "/dev/v4l/by-id/usb-cam": ("/dev/v4l/by-id/usb-cam", "CAP_V4L2", True),
        "rtsp://10.0.0.2:8554/cam": ("rtsp://10.0.0.2:8554/cam", "CAP_FFMPEG", True),
        "gst:videotestsrc ! appsink": ("videotestsrc ! appsink", "CAP_GSTREAMER", True),
    }
    for uri, (target, api, live) in cases.items():
        src = open_source(uri, 640, 480, 30)
        assert isinstance(src, CaptureSource)
        assert (src.target, src.api, src.live) == (target, api, live), uri
    assert open_source("0", 640, 480, 30).request == (640, 480, 30)
    csi = open_source("csi://1", 1920, 1080, 60)
    assert isinstance(csi, CaptureSource) and csi.api == "CAP_GSTREAMER"
    assert "sensor-id=1" in str(csi.target) and "width=1920" in str(csi.target) and "60/1" in str(csi.target)
    video = write_video(tmp_path / "v.mp4", scene_frames[:3])
    for uri in (str(video), f"file://{video}"):
        src = open_source(uri)
        assert isinstance(src, CaptureSource) and not src.live
    assert isinstance(open_source(str(tmp_path)), FolderSource) and not open_source(str(tmp_path)).live
    fake = FakeLive([True])
    assert open_source(fake) is fake


def test_video_file_reads_every_frame_then_ends(tmp_path: Path, scene_frames: np.ndarray) -> None:
    src = open_source(str(write_video(tmp_path / "v.mp4", scene_frames[:6], fps=12)))
    src.open()
    frames = []
    while (f := src.read()) is not None:
        frames.append(f)
    src.close()
    src.close()  # twice is fine
    assert len(frames) == 6 and src.fps == 12
    errors = np.abs(np.stack(frames).astype(int) - scene_frames[:6].astype(int)).mean(axis=(1, 2, 3))
    assert errors.max() < 12  # lossy codec, same pictures


def test_folder_in_name_order_skipping_unreadable(tmp_path: Path, scene_frames: np.ndarray) -> None:
    for i in (2, 0, 1):
        cv2.imwrite(str(tmp_path / f"img_{i}.png"), scene_frames[i])
    (tmp_path / "img_05.png").write_bytes(b"not a png")
    (tmp_path / "notes.txt").write_text("ignored")
    src = open_source(str(tmp_path))
    src.open()
    got = [src.read() for _ in range(4)]
    assert got[3] is None
    for i in range(3):
        np.testing.assert_array_equal(got[i], scene_frames[i])


def test_sampled_video_and_folder_by_index(tmp_path: Path, scene_frames: np.ndarray) -> None:
    video = SampledSource(open_source(str(write_video(tmp_path / "v.mp4", scene_frames[:10]))), every=3)
    assert (video.total, len(video)) == (10, 4)  # frames 0, 3, 6, 9
    got = list(video.frames([1, 3]))
    errors = [
        np.abs(g.astype(int) - scene_frames[i].astype(int)).mean() for g, i in zip(got, (3, 9), strict=True)
    ]
    assert len(got) == 2 and max(errors) < 12  # lossy codec, same pictures
    with pytest.raises(DataError, match="only 1 of 2 frames"):
        list(video.frames([3, 4]))
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    cv2.imwrite(str(folder / "a.png"), scene_frames[0])
    cv2.imwrite(str(folder / "sub" / "b.png"), scene_frames[1])
    assert SampledSource(open_source(str(folder))).total == 1  # subfolders only when recursive
    deep = SampledSource(FolderSource(str(folder), folder, recursive=True, strict=True), rgb=True)
    assert deep.description == f"{folder} (2 frames)"
    (frame,) = deep.frames([1])
    np.testing.assert_array_equal(frame, scene_frames[1][..., ::-1])
    with pytest.raises(StreamError, match="live source"):
        SampledSource(open_source("0"))


def test_unopenable_sources_name_the_uri(tmp_path: Path) -> None:
    with pytest.raises(StreamError, match=r"'.*missing\.mp4': no such file"):
        open_source(str(tmp_path / "missing.mp4"))
    (tmp_path / "fake.mp4").write_text("not a video")
    with pytest.raises(StreamError, match=r"fake\.mp4': not a video OpenCV can decode"):
        open_source(str(tmp_path / "fake.mp4")).open()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(StreamError, match=r"no .* images"):
        open_source(str(empty)).open()
    with pytest.raises(StreamError, match="csi://<sensor id>"):
        open_source("csi://left")
    with pytest.raises(StreamError, match=r"'/dev/video97': no such camera"):
        open_source("/dev/video97").open()
    if not cv2.videoio_registry.hasBackend(cv2.CAP_GSTREAMER):
        with pytest.raises(StreamError, match="no GStreamer support"):
            open_source("gst:videotestsrc ! appsink").open()


def test_reconnect_backoff_doubles_up_to_the_cap() -> None:
    assert [Reconnect().wait(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert Reconnect(delay=0.1, factor=3.0, max_delay=1.0).wait(3) == pytest.approx(0.9)

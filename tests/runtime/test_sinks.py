"""Sinks: the tiled picture shows each task, recordings appear whole on close, saved outputs are exact."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from stream_helpers import count_frames

from simokit.runtime.bundle import BundleMeta, InputSpec
from simokit.runtime.overlay import blend, colorize_seg, normals_to_rgb
from simokit.runtime.sinks import RecordSink, SaveSink, Visualizer, make_sinks
from simokit.runtime.sources import StreamError
from simokit.runtime.stats import StreamStats
from simokit.runtime.stream_types import Frame

PALETTE = ((10, 20, 30), (200, 0, 0), (0, 0, 250))
META = BundleMeta(
    tasks=("seg", "depth", "normal"),
    input=InputSpec("image", "uint8", 56, 56, (0.5,) * 3, (0.5,) * 3),
    outputs={
        "seg": {"kind": "logits"},
        "depth": {"kind": "metres"},
        "normal": {"kind": "unit_vectors"},
    },
    classes=("a", "b", "c"),
    palette=PALETTE,
)


def _result(index: int, h: int = 40, w: int = 60) -> tuple[Frame, dict[str, np.ndarray]]:
    image = np.random.default_rng(index).integers(0, 256, (h, w, 3), dtype=np.uint8)
    seg = np.zeros((3, h, w), np.float32)
    seg[2] = 1.0  # class 2 everywhere
    normal = np.zeros((3, h, w), np.float32)
    normal[2] = -1.0
    depth = np.broadcast_to(np.linspace(1, 10, w, dtype=np.float32), (1, h, w)).copy()
    return Frame(index, image, 0.0), {"seg": seg, "depth": depth, "normal": normal}


def test_visualizer_tiles_every_task() -> None:
    frame, outputs = _result(0)
    picture = Visualizer(META)(frame, outputs)
    assert picture.shape == (2 * 40 + 2, 2 * 60 + 2, 3)  # 4 tiles in a 2x2 grid, 2-pixel gaps
    np.testing.assert_array_equal(picture[:10, :60], frame.image[:10])  # the frame, top-left
    seg_rgb = blend(frame.image[..., ::-1], colorize_seg(np.full((40, 60), 2), np.array(PALETTE, np.uint8)))
    np.testing.assert_array_equal(picture[:10, 62:], seg_rgb[:10, :, ::-1])  # seg blended, top-right
    expected_normal = normals_to_rgb(np.moveaxis(outputs["normal"], 0, -1))[0, 0, ::-1]
    np.testing.assert_array_equal(picture[42, 62 + 30], expected_normal)  # normals, bottom-right
    depth_row = picture[42, :60].astype(int)
    assert depth_row[0, 2] > depth_row[0, 0] and depth_row[-1, 0] > depth_row[-1, 2]  # near warm, far cool


def test_visualizer_shrinks_wide_frames_and_writes_stats() -> None:
    frame, outputs = _result(1, 360, 1280)
    assert Visualizer(META)(frame, outputs).shape == (2 * 180 + 2, 2 * 640 + 2, 3)
    stats = StreamStats(inferred=5, delivered=5)
    stats.latencies.extend([0.01] * 5)
    plain = Visualizer(META)(*_result(2))
    with_text = Visualizer(META, stats)(*_result(2))
    assert (plain[:20] != with_text[:20]).any() and (plain[30:] == with_text[30:]).all()


def test_visualizer_draws_each_task_by_its_colouriser() -> None:
    frame, _ = _result(3)
    labels = {"seg": np.full((40, 60), 1, np.int32), "edge": np.full((1, 20, 30), 0.5, np.float32)}
    picture = Visualizer(META)(frame, labels)  # seg as exported labels, edge at half the frame size
    assert picture.shape == (40, 3 * 60 + 4, 3)
    seg_rgb = blend(frame.image[..., ::-1], colorize_seg(np.full((40, 60), 1), np.array(PALETTE, np.uint8)))
    np.testing.assert_array_equal(picture[:10, 62:122], seg_rgb[:10, :, ::-1])
    np.testing.assert_array_equal(picture[10, 124:184], np.full((60, 3), 127))  # grey, resized to the frame


def test_record_appears_only_when_closed(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "rec.mp4"
    sink = RecordSink(path, Visualizer(META), fps=lambda: 12.0)
    for i in range(7):
        sink.write(*_result(i))
    assert not path.exists()  # still being written under a temporary name
    sink.close()
    assert count_frames(path) == 7 and cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FPS) == 12
    assert sorted(p.name for p in path.parent.iterdir()) == ["rec.mp4"]
    empty = RecordSink(tmp_path / "empty.avi", Visualizer(META))
    empty.close()
    assert not (tmp_path / "empty.avi").exists()
    with pytest.raises(StreamError, match=r"\.mp4, \.m4v"):
        RecordSink(tmp_path / "rec.gif", Visualizer(META))


def test_save_writes_label_png_millimetre_depth_and_normals(tmp_path: Path) -> None:
    sink = SaveSink(tmp_path / "out", Visualizer(META))
    frame, outputs = _result(3)
    outputs["depth"][0, 0, :3] = (np.nan, -1.0, 80.0)  # no depth, invalid, beyond 16-bit millimetres
    sink.write(frame, outputs)
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == [
        "000003.png", "000003_depth.png", "000003_normal.npy", "000003_seg.png"
    ]  # fmt: skip
    labels = cv2.imread(str(out / "000003_seg.png"), cv2.IMREAD_UNCHANGED)
    assert labels.dtype == np.uint8 and labels.shape == (40, 60) and (labels == 2).all()
    mm = cv2.imread(str(out / "000003_depth.png"), cv2.IMREAD_UNCHANGED)
    assert mm.dtype == np.uint16 and mm.shape == (40, 60)
    assert list(mm[0, :3]) == [0, 0, 65535]
    expected = np.round(outputs["depth"][0, 1:] * 1000).astype(np.uint16)
    assert np.abs(mm[1:].astype(int) - expected).max() <= 1
    normals = np.load(out / "000003_normal.npy")
    assert normals.dtype == np.float32 and normals.shape == (40, 60, 3)
    np.testing.assert_array_equal(normals, np.moveaxis(outputs["normal"], 0, -1))
    assert cv2.imread(str(out / "000003.png")).shape == (82, 122, 3)


def test_save_names_files_after_the_input_and_raw_keeps_graph_outputs(tmp_path: Path) -> None:
    sink = SaveSink(tmp_path / "out", Visualizer(META), raw=True)
    frame, outputs = _result(4)
    named = Frame(frame.index, frame.image, 0.0, name="left/cam_0001")
    sink.write(named, outputs)
    folder = tmp_path / "out" / "left"
    assert (folder / "cam_0001.png").is_file() and (folder / "cam_0001_seg.png").is_file()
    for task, value in outputs.items():
        np.testing.assert_array_equal(
            np.load(folder / f"cam_0001_{task}.npy"), np.moveaxis(value, 0, -1) if task == "normal" else value
        )
    many = np.zeros((300, 4, 5), np.float32)
    many[299] = 1.0
    sink.write(Frame(5, frame.image[:4, :5], 0.0), {"seg": many})
    wide = cv2.imread(str(tmp_path / "out" / "000005_seg.png"), cv2.IMREAD_UNCHANGED)
    assert wide.dtype == np.uint16 and (wide == 299).all()


@pytest.mark.skipif(not re.search(r"GUI:\s+NONE", cv2.getBuildInformation()), reason="OpenCV has a GUI here")
def test_window_without_gui_says_use_headless(tmp_path: Path) -> None:
    with pytest.raises(StreamError, match="pass --headless"):
        make_sinks(META, window=True)
    sinks = make_sinks(META, record=tmp_path / "r.mp4", save=tmp_path / "s")
    assert [type(s).__name__ for s in sinks] == ["RecordSink", "SaveSink"]

"""Calibration readers: deterministic subsets, the runtime's exact pre-processing, every source kind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from calib_helpers import SIZE, frames

from simokit.calib.frames import NYUv2Images, SceneSplit, open_frames
from simokit.calib.readers import OrtCalibReader, load_calib_set, subset_indices
from simokit.errors import ConfigError, DataError
from simokit.runtime import load
from simokit.runtime.bundle import read_meta
from simokit.runtime.sources import CaptureSource, FolderSource, StreamError


def test_subset_is_deterministic_sorted_and_checked() -> None:
    a = subset_indices(100, 10, seed=0)
    assert a == subset_indices(100, 10, seed=0)
    assert a != subset_indices(100, 10, seed=1)
    assert list(a) == sorted(set(a)) and len(a) == 10 and max(a) < 100
    assert subset_indices(5, 5) == (0, 1, 2, 3, 4)
    with pytest.raises(DataError, match=r"asked for 6 calibration images but the data holds 5; pass --n 5"):
        subset_indices(5, 6)
    with pytest.raises(ConfigError, match="at least 1"):
        subset_indices(5, 0)


def _engine_inputs(bundle: Path, bgr_frames: list[np.ndarray]) -> list[np.ndarray]:
    """What the runtime engine feeds its graph for each BGR frame (captured at _run)."""
    engine = load(bundle)
    seen: list[np.ndarray] = []
    run = engine._run

    def capture(x: np.ndarray) -> dict[str, np.ndarray]:
        seen.append(x.copy())
        return run(x)

    engine._run = capture  # type: ignore[method-assign]
    for f in bgr_frames:
        engine.infer(f)
    return seen


@pytest.mark.parametrize("kind", ["uint8", "float"])
def test_image_folder_equals_the_engines_preprocessing(
    kind: str, bundles: dict[str, Path], image_folder: Path
) -> None:
    import cv2

    meta = read_meta(bundles[kind])
    source = open_frames(str(image_folder), n=5)
    assert isinstance(source.source, FolderSource) and len(source) == 12
    data = load_calib_set(source, meta, n=5, progress=False)
    again = load_calib_set(open_frames(str(image_folder), n=5), meta, n=5, progress=False)
    assert data.sha256 == again.sha256 and data.indices == again.indices
    np.testing.assert_array_equal(data.inputs, again.inputs)
    shape = (5, SIZE, SIZE, 3) if kind == "uint8" else (5, 3, SIZE, SIZE)
    assert data.inputs.shape == shape
    bgr = [np.asarray(cv2.imread(str(source.source.files[i]))) for i in data.indices]
    assert any(f.shape[:2] != (SIZE, SIZE) for f in bgr)  # resizing is exercised too
    expected = _engine_inputs(bundles[kind], bgr)
    for got, want in zip(data.inputs, expected, strict=True):
        np.testing.assert_array_equal(got, want[0])


def test_image_folder_errors(tmp_path: Path, image_folder: Path, bundles: dict[str, Path]) -> None:
    import cv2

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match="no images"):
        open_frames(str(empty), n=1)
    gray = tmp_path / "gray"
    gray.mkdir()
    cv2.imwrite(str(gray / "a.png"), np.zeros((SIZE, SIZE), np.uint8))
    with pytest.raises(DataError, match=r"1-channel uint8 image; calibration needs 8-bit 3-channel"):
        load_calib_set(open_frames(str(gray), n=1), read_meta(bundles["uint8"]), n=1, progress=False)
    with pytest.raises(DataError, match="not found"):
        open_frames(str(tmp_path / "missing"), n=1)


def test_unreadable_images_are_skipped_and_a_folder_of_none_is_an_error(
    tmp_path: Path, image_folder: Path, bundles: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    good = sum(1 for p in image_folder.rglob("*.png"))
    (image_folder / "aa_broken.jpg").write_bytes(b"\xff\xd8 a JPEG cut off on its way")
    source = open_frames(str(image_folder), n=good + 1)
    with caplog.at_level("WARNING"):
        data = load_calib_set(source, read_meta(bundles["uint8"]), n=good + 1, progress=False)
    assert len(data.inputs) == good
    warnings = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(warnings) == 1 and "aa_broken.jpg" in warnings[0]
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("a.jpg", "b.png"):
        (bad / name).write_bytes(b"garbage")
    with pytest.raises(StreamError, match=r"none of the 2 image file\(s\) read could be decoded"):
        load_calib_set(open_frames(str(bad), n=2), read_meta(bundles["uint8"]), n=2, progress=False)


def test_video_every_kth_frame(tmp_path: Path, bundles: dict[str, Path]) -> None:
    import cv2

    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10, (SIZE, SIZE))
    clip = np.zeros((20, SIZE, SIZE, 3), np.uint8)
    clip[..., 0] = (np.arange(20) * 12)[:, None, None]  # frame i is tagged by its red level 12 i
    clip[..., 1] = 90
    for f in clip:
        writer.write(np.ascontiguousarray(f[..., ::-1]))
    writer.release()
    source = open_frames(str(path), n=7, every=3)
    assert isinstance(source.source, CaptureSource) and len(source) == 7  # frames 0, 3, ..., 18
    reds = [float(f[..., 0].mean()) for f in source.frames([1, 4, 6])]
    np.testing.assert_allclose(reds, [36, 144, 216], atol=3)  # JPEG-compressed, so not exact
    data = load_calib_set(source, read_meta(bundles["uint8"]), n=4, progress=False)
    assert data.inputs.shape == (4, SIZE, SIZE, 3) and "1 in 3 of its 20 frames" in data.source
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    with pytest.raises(DataError, match=r"bad\.mp4': not a video OpenCV can decode"):
        open_frames(str(bad), n=1)


def test_nyuv2_and_scene_sources(
    nyu_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bundles: dict[str, Path]
) -> None:
    source = open_frames(str(nyu_folder), n=3)
    assert (
        isinstance(source.source, NYUv2Images) and len(source) == 6 and "split 'train'" in source.description
    )
    first = next(iter(source.frames([0])))
    np.testing.assert_array_equal(first, np.load(nyu_folder / "train" / "image" / "0.npy"))
    assert isinstance(open_frames(str(nyu_folder / "test"), n=1).source, NYUv2Images)
    monkeypatch.setenv("SIMOKIT_CACHE", str(tmp_path / "cache"))
    scenes = open_frames("scenes", n=3, progress=False)
    assert isinstance(scenes.source, SceneSplit) and len(scenes) == 3
    data = load_calib_set(scenes, read_meta(bundles["float"]), n=3, progress=False)
    assert data.inputs.shape == (3, 3, SIZE, SIZE) and data.inputs.dtype == np.float32


def test_ort_reader_batches_ranges_and_rewind(bundles: dict[str, Path]) -> None:
    from simokit.calib.readers import CalibSet

    data = CalibSet(frames(10), "image", "test", tuple(range(10)), "0")
    reader = OrtCalibReader(data, batch=4)
    sizes = []
    while (batch := reader.get_next()) is not None:
        sizes.append(len(batch["image"]))
    assert sizes == [4, 4, 2] and len(reader) == 3
    reader.rewind()
    np.testing.assert_array_equal(reader.get_next()["image"], data.inputs[:4])  # type: ignore[index]
    reader.set_range(1, 2)
    np.testing.assert_array_equal(reader.get_next()["image"], data.inputs[4:8])  # type: ignore[index]
    assert reader.get_next() is None

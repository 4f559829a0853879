"""Frames for a study on the user's material: even sampling, the resize rule, the split, bad inputs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from own_helpers import frames, write_avi, write_folder, write_mcap

from simokit.errors import ConfigError, DataError
from simokit.own_recipe import parse_size
from simokit.pipeline.own_frames import even_indices, load_frame_set, to_model_size


def test_even_indices_spread_over_the_source() -> None:
    assert even_indices(10, 4) == [0, 3, 6, 9]
    assert even_indices(3, 8) == [0, 1, 2]


def test_sizes_parse_square_or_not_and_refuse_non_multiples() -> None:
    assert parse_size(518) == (518, 518) and parse_size("448x644") == (448, 644)
    for bad in ("500", "448x", "0", "14x15"):
        with pytest.raises(ConfigError, match="--size"):
            parse_size(bad)


def test_resize_covers_then_centre_crops() -> None:
    frame = np.random.default_rng(0).integers(0, 256, (60, 64, 3), dtype=np.uint8)
    got = to_model_size(frame, (42, 42))
    scaled = cv2.resize(frame, (45, 42), interpolation=cv2.INTER_AREA)  # scale 0.7 covers 42x42
    np.testing.assert_array_equal(got, scaled[:, 1:43])
    np.testing.assert_array_equal(to_model_size(frame[:56, :56], (56, 56)), frame[:56, :56])


def test_folder_video_and_bag_give_the_same_split(tmp_path: Path) -> None:
    bgr = frames(8, 48, 64)
    folder = load_frame_set(str(write_folder(tmp_path / "f", bgr)), 8, (42, 56))
    bag = load_frame_set(str(write_mcap(tmp_path / "r.mcap", bgr)), 8, (42, 56), "/camera/image_raw")
    video = load_frame_set(str(write_avi(tmp_path / "v.avi", bgr)), 8, (42, 56))
    expected = np.stack([to_model_size(f[..., ::-1], (42, 56)) for f in bgr])
    for got in (folder, bag):
        np.testing.assert_array_equal(got.fit.image, expected[0::2])
        np.testing.assert_array_equal(got.held.image, expected[1::2])
    assert folder.key == bag.key and folder.frame_size == (48, 64)
    assert np.abs(video.held.image.astype(int) - expected[1::2]).mean() < 8  # MJPG is lossy
    assert load_frame_set(str(tmp_path / "f"), 4, (42, 56)).key != folder.key


def _one_line(exc: pytest.ExceptionInfo[Exception]) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_bad_inputs_give_one_line_each(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError) as exc:
        load_frame_set(str(tmp_path / "empty"), 8, (42, 42))
    assert "no images" in _one_line(exc)
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    with pytest.raises(DataError) as exc:
        load_frame_set(str(tmp_path / "bad.mp4"), 8, (42, 42))
    assert "not a video OpenCV can decode" in _one_line(exc)
    mixed = tmp_path / "mixed"
    write_folder(mixed, frames(4, 48, 64))
    cv2.imwrite(str(mixed / "cam" / "zz.png"), frames(1, 56, 56)[0])
    with pytest.raises(DataError) as exc:
        load_frame_set(str(mixed), 8, (42, 42))
    assert "mixed sizes (48x64 at frame 0, 56x56 at frame 4)" in _one_line(exc)
    with pytest.raises(DataError) as exc:
        load_frame_set(str(tmp_path / "mixed" / "cam" / "a"), 8, (56, 56))
    assert "frames are 48x64, smaller than the model input 56x56" in _one_line(exc)
    bag = write_mcap(tmp_path / "r.mcap", frames(4))
    with pytest.raises(DataError) as exc:
        load_frame_set(str(bag), 8, (42, 42), "/front/image")
    assert "its image topics: /camera/image_raw (Image, 4 messages)" in _one_line(exc)


def test_experts_yaml_template_is_a_valid_recipe() -> None:
    from simokit.config import from_dict, load_yaml
    from simokit.recipe import PipelineConfig

    cfg = from_dict(PipelineConfig, load_yaml(Path(__file__).parents[2] / "configs" / "experts.yaml"))
    assert cfg.own.active and len(cfg.own.experts) == 3 and cfg.own.topic == "/camera/image_raw"
    assert cfg.own.hw is None and cfg.own.calib_frames == 256


def test_a_camera_gives_its_first_n_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    from simokit.runtime import sources
    from simokit.runtime.sources import Source

    bgr = frames(6, 48, 64)

    class Camera(Source):
        live, uri = True, "0"

        def open(self) -> None:
            self.i = 0

        def read(self) -> np.ndarray | None:
            self.i += 1
            return bgr[self.i - 1] if self.i <= len(bgr) else None

        def close(self) -> None:
            pass

    monkeypatch.setattr(sources, "open_source", lambda spec: Camera())
    got = load_frame_set("0", 4, (42, 56))
    expected = np.stack([to_model_size(f[..., ::-1], (42, 56)) for f in bgr[:4]])
    np.testing.assert_array_equal(got.fit.image, expected[0::2])
    assert got.description == "camera 0 (first 4 frames)"


def test_labelled_val_folder_is_brought_to_the_model_size_like_the_frames(tmp_path: Path) -> None:
    from own_helpers import write_nyu

    from simokit.data.folders import NYUv2Folder
    from simokit.pipeline.own_frames import to_model_size
    from simokit.pipeline.own_labelled import labelled_splits

    root = write_nyu(tmp_path / "nyu", 60, 84)
    select, report = labelled_splits(str(root), (42, 56))
    assert select is not None and report is not None
    original = NYUv2Folder(root, "test").to_arrays()
    assert report.image.shape == (4, 42, 56, 3) and report.seg.shape == (4, 42, 56)  # type: ignore[union-attr]
    np.testing.assert_array_equal(report.image[0], to_model_size(original.image[0], (42, 56)))
    # labels resampled by nearest: every value is one the source had at the matching place
    scale = max(42 / 60, 56 / 84)
    sh, sw = round(60 * scale), round(84 * scale)
    top, left = (sh - 42) // 2, (sw - 56) // 2
    rows = np.floor((np.arange(42) + top) * 60 / sh).astype(int)
    cols = np.floor((np.arange(56) + left) * 84 / sw).astype(int)
    np.testing.assert_array_equal(report.seg[1], original.seg[1][np.ix_(rows, cols)])  # type: ignore[index]
    np.testing.assert_array_equal(report.depth[1], original.depth[1][np.ix_(rows, cols)])  # type: ignore[index]
    with pytest.raises(DataError, match=r"images are 60x84, smaller than the model input 70x70"):
        labelled_splits(str(root), (70, 70))

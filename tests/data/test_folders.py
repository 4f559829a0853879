"""Tests for the NYUv2-layout folder loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from simokit.data.folders import NYUv2Folder
from simokit.errors import DataError

H, W = 6, 8


def _write(
    root: Path, split: str = "train", n: int = 3, tasks: tuple[str, ...] = ("label", "depth", "normal")
) -> None:
    rng = np.random.default_rng(0)
    for name in ("image", *tasks):
        (root / split / name).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        np.save(root / split / "image" / f"{i}.npy", rng.random((H, W, 3)).astype(np.float32))
        if "label" in tasks:
            label = rng.integers(-1, 13, (H, W))
            label[0, 0], label[0, 1] = -1, 255
            np.save(root / split / "label" / f"{i}.npy", label)
        if "depth" in tasks:
            depth = rng.uniform(0.5, 9.0, (H, W, 1))
            depth[0, 0] = 0.0
            np.save(root / split / "depth" / f"{i}.npy", depth)
        if "normal" in tasks:
            normal = rng.normal(size=(H, W, 3))
            normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
            np.save(root / split / "normal" / f"{i}.npy", normal)


def test_sample_conventions(tmp_path: Path) -> None:
    _write(tmp_path)
    ds = NYUv2Folder(tmp_path, "train")
    assert len(ds) == 3 and ds.tasks == ("seg", "depth", "normal")
    s = ds[1]
    raw = np.load(tmp_path / "train" / "image" / "1.npy")
    assert s["image"].dtype == np.uint8 and s["image"].shape == (H, W, 3)
    np.testing.assert_array_equal(s["image"], np.round(raw * 255).astype(np.uint8))
    assert s["seg"].dtype == np.uint8 and s["seg"][0, 0] == 255 and s["seg"][0, 1] == 255
    assert s["seg"][s["seg"] != 255].max() <= 12
    assert s["depth"].dtype == np.float32 and s["depth"].shape == (H, W) and s["depth"][0, 0] == 0.0
    assert s["normal"].dtype == np.float32 and s["normal"].shape == (H, W, 3)
    with pytest.raises(IndexError):
        ds[3]


def test_uint8_images_and_numeric_order(tmp_path: Path) -> None:
    (tmp_path / "val" / "image").mkdir(parents=True)
    for i in (10, 2, 1):
        np.save(tmp_path / "val" / "image" / f"{i}.npy", np.full((H, W, 3), i, dtype=np.uint8))
    ds = NYUv2Folder(tmp_path, "val")
    assert ds.indices == [1, 2, 10] and ds.tasks == ()
    assert ds[2]["image"][0, 0, 0] == 10


def test_to_arrays_stacks_and_omits_missing_tasks(tmp_path: Path) -> None:
    _write(tmp_path, tasks=("label", "depth"))
    arrays = NYUv2Folder(tmp_path, "train").to_arrays()
    assert len(arrays) == 3 and arrays.tasks == ("seg", "depth")
    assert arrays.image.shape == (3, H, W, 3) and arrays.normal is None and arrays.edge is None
    assert arrays.domain.tolist() == [0, 0, 0]
    sub = NYUv2Folder(tmp_path, "train").to_arrays([2, 0])
    assert sub.seg is not None and arrays.seg is not None
    np.testing.assert_array_equal(sub.seg[0], arrays.seg[2])


def test_missing_root_split_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nowhere"):
        NYUv2Folder(tmp_path / "nowhere", "train")
    _write(tmp_path)
    with pytest.raises(DataError, match="val"):
        NYUv2Folder(tmp_path, "val")
    (tmp_path / "test" / "image").mkdir(parents=True)
    with pytest.raises(DataError, match=r"no N\.npy"):
        NYUv2Folder(tmp_path, "test")
    (tmp_path / "calib").mkdir()
    with pytest.raises(DataError, match="image"):
        NYUv2Folder(tmp_path, "calib")


def test_mismatched_numbering_names_the_folder(tmp_path: Path) -> None:
    _write(tmp_path)
    (tmp_path / "train" / "depth" / "2.npy").rename(tmp_path / "train" / "depth" / "7.npy")
    with pytest.raises(DataError, match=r"depth.*missing \[2\].*unexpected \[7\]"):
        NYUv2Folder(tmp_path, "train")


def test_bad_names_and_bad_arrays(tmp_path: Path) -> None:
    _write(tmp_path)
    np.save(tmp_path / "train" / "image" / "x.npy", np.zeros((H, W, 3)))
    with pytest.raises(DataError, match=r"x\.npy"):
        NYUv2Folder(tmp_path, "train")
    (tmp_path / "train" / "image" / "x.npy").unlink()
    np.save(tmp_path / "train" / "image" / "0.npy", np.full((H, W, 3), 3.0))
    ds = NYUv2Folder(tmp_path, "train")
    with pytest.raises(DataError, match=r"outside \[0, 1\]"):
        ds[0]
    np.save(tmp_path / "train" / "depth" / "1.npy", np.ones((H + 1, W)))
    with pytest.raises(DataError, match=r"1\.npy"):
        ds[1]

"""Tiny bundles (nano ViT at 56 px, linear heads) and small calibration data on disk."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from calib_helpers import SIZE, TASKS, frames, tiny_model

from simokit.data import PALETTE
from simokit.export.bundle import write_bundle
from simokit.export.onnx import ExportSpec


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One published bundle per input kind and one with frame IO, built once per test session (copy
    before changing)."""
    model = tiny_model()
    root = tmp_path_factory.mktemp("calib-bundles")
    specs = {kind: ExportSpec(TASKS, SIZE, SIZE, input_kind=kind) for kind in ("uint8", "float")}
    specs["frame"] = ExportSpec(TASKS, SIZE, SIZE, input_kind="uint8", io="frame", seg_output="labels")
    return {
        name: write_bundle(root / name, model, spec, frames(2), classes=("c",) * 11, palette=PALETTE)
        for name, spec in specs.items()
    }


@pytest.fixture()
def bundle(bundles: dict[str, Path], tmp_path: Path) -> Path:
    """A private copy of the uint8-input bundle that a test may modify."""
    return Path(shutil.copytree(bundles["uint8"], tmp_path / "bundle"))


@pytest.fixture()
def image_folder(tmp_path: Path) -> Path:
    """Twelve PNGs of mixed sizes (BGR on disk, as OpenCV writes them)."""
    import cv2

    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    for i, img in enumerate(frames(12, seed=1)):
        size = (70, 84) if i % 3 == 0 else (SIZE, SIZE)
        img = cv2.resize(img, size[::-1]) if size != (SIZE, SIZE) else img
        target = folder / ("sub" if i % 4 == 0 else "") / f"{i:02d}.png"
        cv2.imwrite(str(target), np.ascontiguousarray(img[..., ::-1]))
    return folder


@pytest.fixture()
def nyu_folder(tmp_path: Path) -> Path:
    """An NYUv2-layout folder: train/ and test/ with images and seg/depth/normal labels."""
    rng = np.random.default_rng(5)
    root = tmp_path / "nyu"
    for split, n in (("train", 6), ("test", 6)):
        imgs = frames(n, seed=7 if split == "train" else 8)
        for i in range(n):
            normal = rng.normal(0, 1, (SIZE, SIZE, 3)).astype(np.float32)
            normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
            arrays = {
                "image": imgs[i],
                "label": rng.integers(0, 11, (SIZE, SIZE)).astype(np.uint8),
                "depth": rng.uniform(0.5, 10.0, (SIZE, SIZE)).astype(np.float32),
                "normal": normal,
            }
            for name, value in arrays.items():
                (root / split / name).mkdir(parents=True, exist_ok=True)
                np.save(root / split / name / f"{i}.npy", value)
    return root

"""Shared stream fixtures: a tiny bundle and frames of the embedded scenes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from stream_helpers import FRAME_HW

TASKS = ("seg", "depth", "normal")


@pytest.fixture(scope="session")
def stream_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 56x56 vitnano14 bundle with seg (11 classes), depth and normal heads (~1 s to build)."""

    from tiny_models import tiny_model

    from simokit.data import PALETTE
    from simokit.export.bundle import write_bundle
    from simokit.export.onnx import ExportSpec

    model = tiny_model(seed=0, seg_batch_norm=False)
    verify = np.random.default_rng(0).integers(0, 256, size=(1, 56, 56, 3), dtype=np.uint8)
    out = tmp_path_factory.mktemp("stream") / "bundle"
    return write_bundle(out, model, ExportSpec(TASKS, 56, 56), verify, classes=("c",) * 11, palette=PALETTE)


@pytest.fixture(scope="session")
def scene_frames() -> np.ndarray:
    """20 distinct embedded scenes as (20, 48, 64, 3) uint8 BGR frames."""
    from simokit.data.scenes import render_scene

    images = [render_scene(i, ("indoor", "outdoor")[i % 2], FRAME_HW)["image"] for i in range(20)]
    return np.ascontiguousarray(np.stack(images)[..., ::-1])

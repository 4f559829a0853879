"""A folder of frames with unreadable images: skipped with one warning; none readable is an error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tiny_models import tiny_model

from simokit.cli import main
from simokit.data import PALETTE
from simokit.export.bundle import write_bundle
from simokit.export.onnx import ExportSpec


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frames = np.random.default_rng(0).integers(0, 256, size=(2, 56, 56, 3), dtype=np.uint8)
    out = tmp_path_factory.mktemp("u") / "bundle"
    return write_bundle(
        out, tiny_model(seed=1), ExportSpec(("seg", "depth", "normal"), 56, 56), frames, ("a",) * 11, PALETTE
    )


def _folder(root: Path, good: int, broken: int) -> Path:
    import cv2

    root.mkdir()
    rng = np.random.default_rng(1)
    for i in range(good):
        cv2.imwrite(str(root / f"g{i}.png"), rng.integers(0, 256, (56, 56, 3), np.uint8))
    for i in range(broken):
        (root / f"b{i}.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    return root


def test_run_skips_unreadable_images_with_one_warning(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    folder = _folder(tmp_path / "mixed", good=3, broken=2)
    with caplog.at_level("WARNING"):
        assert main(["run", str(bundle), "--source", str(folder), "--headless", "-q"]) == 0
    assert "frames: 3 " in capsys.readouterr().out
    warnings = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(warnings) == 1 and "b0.jpg" in warnings[0] and "b1.jpg" in warnings[0]


@pytest.mark.parametrize("command", ["run", "calib"])
def test_no_readable_image_is_one_line_and_exit_2(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    folder = _folder(tmp_path / "bad", good=0, broken=2)
    argv = {
        "run": ["run", str(bundle), "--source", str(folder), "--headless", "-q"],
        "calib": ["calib", str(bundle), "--data", str(folder), "--n", "2", "--eval", "none", "-q"],
    }[command]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "could be decoded" in err[0], err

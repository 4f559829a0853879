"""Bundles: atomic publish, the torch-free engine matches torch, clear errors, inspect."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_models import tiny_model

from simokit.cli import main
from simokit.data import PALETTE, to_tensor_batch
from simokit.errors import ConfigError, ShapeError
from simokit.export.bundle import write_bundle
from simokit.export.onnx import ExportSpec
from simokit.models import MultiTaskModel
from simokit.runtime import load
from simokit.runtime.bundle import BundleError

TASKS = ("seg", "depth", "normal")


@pytest.fixture(scope="module")
def model() -> MultiTaskModel:
    return tiny_model(seed=1)


def _frames(n: int, h: int = 56, w: int = 56) -> np.ndarray:
    return np.random.default_rng(n).integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module", params=["uint8", "float"])
def bundle(
    request: pytest.FixtureRequest, model: MultiTaskModel, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("b") / "bundle"
    spec = ExportSpec(TASKS, 56, 56, input_kind=request.param)
    return write_bundle(out, model, spec, _frames(2), classes=("a",) * 11, palette=PALETTE, extra={"note": 1})


def test_engine_on_bgr_frames_equals_torch(bundle: Path, model: MultiTaskModel) -> None:
    engine = load(bundle)
    rgb = _frames(3)
    out = engine.infer(rgb[..., ::-1].copy())  # OpenCV-style BGR in
    with torch.no_grad():
        ref = model(to_tensor_batch(rgb))
    for task in TASKS:
        np.testing.assert_allclose(out[task], ref[task].numpy(), rtol=0, atol=1e-4)
    single = engine.infer(rgb[0], bgr=False)
    assert single["depth"].shape == (1, 56, 56)
    assert "onnxruntime" in engine.describe()


def test_outputs_are_mapped_back_to_the_frame_size(bundle: Path) -> None:
    out = load(bundle).infer(_frames(2, 84, 70))
    assert out["seg"].shape == (2, 11, 84, 70)
    assert out["depth"].shape == (2, 1, 84, 70)
    np.testing.assert_allclose(np.linalg.norm(out["normal"], axis=1), 1.0, atol=1e-4)


def test_bundle_contents_and_inspect(bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert sorted(p.name for p in bundle.iterdir()) == ["meta.json", "model.onnx", "report.md"]
    assert not [p for p in bundle.parent.iterdir() if p.name.startswith(".")]
    meta = json.loads((bundle / "meta.json").read_text())
    assert meta["tasks"] == list(TASKS) and meta["note"] == 1 and len(meta["palette"]) == 11
    assert meta["verification"]["outputs"]["depth"]["max_abs"] < 1e-4
    assert main(["inspect", str(bundle)]) == 0
    text = capsys.readouterr().out
    assert "tasks: seg, depth, normal" in text and "verification fp32 at 56x56 (2 images" in text
    assert main(["inspect", str(bundle / "model.onnx")]) == 0
    assert "simokit.tasks: seg,depth,normal" in capsys.readouterr().out


def test_bad_frames_and_bundles_are_named_errors(bundle: Path, tmp_path: Path) -> None:
    engine = load(bundle)
    with pytest.raises(ShapeError, match="uint8"):
        engine.infer(np.zeros((56, 56, 3), np.float32))
    with pytest.raises(ShapeError, match=r"\(H, W, 1\|3\|4\)"):
        engine.infer(np.zeros((56, 56, 2), np.uint8))
    with pytest.raises(BundleError, match=r"no merged\.safetensors"):
        load(bundle, backend="torch")
    with pytest.raises(ConfigError, match="unknown backend"):
        load(bundle, backend="tensorflow")
    with pytest.raises(BundleError, match="not a directory"):
        load(tmp_path / "missing")
    broken = tmp_path / "broken"
    broken.mkdir()
    unlisted = json.loads((bundle / "meta.json").read_text())
    del unlisted["files"]  # a bundle from before file tables: the graph itself is checked on load
    (broken / "meta.json").write_text(json.dumps(unlisted))
    (broken / "model.onnx").write_bytes(b"not onnx")
    with pytest.raises(BundleError, match="cannot load"):
        load(broken)
    assert main(["inspect", str(tmp_path / "missing")]) == 2


def test_failed_build_leaves_the_old_bundle_untouched(model: MultiTaskModel, tmp_path: Path) -> None:
    spec = ExportSpec(TASKS, 56, 56)
    out = write_bundle(tmp_path / "b", model, spec, _frames(1))
    before = (out / "meta.json").read_text()
    with pytest.raises(Exception):  # noqa: B017 - any failure must leave no trace
        write_bundle(tmp_path / "b", model, spec, _frames(1, 28, 28))  # wrong verification size
    assert (out / "meta.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_runtime_works_without_torch(bundle: Path) -> None:
    code = (
        "import sys, numpy as np\n"
        "sys.modules['torch'] = None  # any 'import torch' now fails\n"
        "from simokit.runtime import load\n"
        f"out = load({str(bundle)!r}).infer(np.zeros((56, 56, 3), np.uint8))\n"
        "print(sorted(out), 'torch' in sys.modules and sys.modules['torch'] is not None)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['depth', 'normal', 'seg'] False"

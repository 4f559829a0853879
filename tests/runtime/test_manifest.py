"""Bundles carry each file's size and SHA-256: a truncated or altered copy is named, not run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from tiny_models import tiny_model

from simokit.cli import main
from simokit.data import PALETTE
from simokit.export.bundle import write_bundle
from simokit.export.onnx import ExportSpec
from simokit.export.triton import TritonOptions, export_triton
from simokit.runtime import load
from simokit.runtime.bundle import BundleError, read_meta
from simokit.runtime.manifest import record_files, sha256_file, verify_folder


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frames = np.random.default_rng(0).integers(0, 256, size=(2, 56, 56, 3), dtype=np.uint8)
    out = tmp_path_factory.mktemp("m") / "bundle"
    spec = ExportSpec(("seg", "depth", "normal"), 56, 56, fp16=True)
    return write_bundle(out, tiny_model(seed=1), spec, frames, ("a",) * 11, PALETTE)


@pytest.fixture
def bundle(built: Path, tmp_path: Path) -> Path:
    """A fresh copy per test, so tests may damage it."""
    return Path(shutil.copytree(built, tmp_path / "bundle"))


def test_every_file_is_recorded_with_its_size_and_hash(bundle: Path) -> None:
    files = json.loads((bundle / "meta.json").read_text())["files"]
    on_disk = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())
    assert sorted(files) == [f for f in on_disk if f != "meta.json"]
    assert {"model.onnx", "model.fp16.onnx", "report.md"} <= set(files)
    for rel, entry in files.items():
        assert entry == {"bytes": (bundle / rel).stat().st_size, "sha256": sha256_file(bundle / rel)}
    assert verify_folder(bundle) == len(files)


def test_a_truncated_graph_is_named_on_load_profile_and_inspect(
    bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    graph = bundle / "model.onnx"
    graph.write_bytes(graph.read_bytes()[: graph.stat().st_size // 2])  # a copy cut off on its way
    with pytest.raises(BundleError, match=r"model\.onnx: \d+ bytes, but the bundle recorded \d+"):
        load(bundle)
    for argv in (["profile", str(bundle), "--iters", "1"], ["inspect", str(bundle)]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "model.onnx" in err[0] and "truncated" in err[0], err


def test_same_size_alteration_is_found_by_verify_only(bundle: Path) -> None:
    graph = bundle / "model.fp16.onnx"
    data = bytearray(graph.read_bytes())
    data[-10] ^= 0xFF  # one flipped byte: sizes still match, so loading does not notice
    graph.write_bytes(bytes(data))
    read_meta(bundle)
    with pytest.raises(BundleError, match=r"model\.fp16\.onnx: sha256 .* differs"):
        verify_folder(bundle)


def test_a_missing_file_is_named(bundle: Path) -> None:
    (bundle / "report.md").unlink()
    with pytest.raises(BundleError, match=r"report\.md: missing"):
        read_meta(bundle)


def test_files_added_later_join_the_table_and_others_stay_out(bundle: Path) -> None:
    (bundle / "model.engine").write_bytes(b"engine")
    (bundle / "trt_cache").mkdir()
    (bundle / "trt_cache" / "x.engine").write_bytes(b"rewritten by a runtime at will")
    record_files(bundle, ["model.engine"])
    files = json.loads((bundle / "meta.json").read_text())["files"]
    assert files["model.engine"]["bytes"] == 6 and "trt_cache/x.engine" not in files
    assert "model.onnx" in files  # the earlier entries stay
    (bundle / "trt_cache" / "x.engine").write_bytes(b"changed")
    read_meta(bundle)  # an unlisted cache may change freely


def test_triton_repository_records_its_own_files(bundle: Path, tmp_path: Path) -> None:
    model_dir = export_triton(bundle, tmp_path / "repo", TritonOptions(None, "onnxruntime", 8, 1, 100))
    files = json.loads((model_dir / "meta.json").read_text())["files"]
    assert sorted(files) == ["1/model.onnx", "config.pbtxt"]
    assert verify_folder(model_dir) == 2
    (model_dir / "config.pbtxt").write_text("max_batch_size: 64\n")
    with pytest.raises(BundleError, match=r"config\.pbtxt"):
        verify_folder(model_dir)


def test_inspect_and_run_verify_name_the_altered_file(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["inspect", str(bundle), "--verify"]) == 0
    assert "verified against meta.json" in capsys.readouterr().out
    graph = bundle / "model.onnx"
    data = bytearray(graph.read_bytes())
    data[-10] ^= 0xFF
    graph.write_bytes(bytes(data))
    assert main(["inspect", str(bundle)]) == 0  # sizes match: only the hashes can tell
    capsys.readouterr()
    frames = tmp_path / "frames"
    frames.mkdir()
    for argv in (
        ["inspect", str(bundle), "--verify"],
        ["run", str(bundle), "--source", str(frames), "--headless", "--verify"],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "model.onnx: sha256" in err[0], err

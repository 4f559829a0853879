"""`simokit calib` end to end on a tiny bundle, the sensitivity sweep, and one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from calib_helpers import frames

from simokit.cli import main
from simokit.runtime import load


def _listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_calib_publishes_int8_model_report_and_meta(
    bundle: Path, image_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copyfile(bundle / "model.onnx", bundle / "model.fp16.onnx")  # stands in for an FP16 export
    before = _listing(bundle)
    argv = ["calib", str(bundle), "--data", str(image_folder), "--n", "8", "--method", "minmax"]
    assert main([*argv, "--eval", "none", "--exclude", "blocks.1", "-q"]) == 0
    out = capsys.readouterr().out
    assert "| INT8 | model.int8.onnx |" in out and "wrote:" in out
    after = sorted(p.name for p in bundle.iterdir())
    assert after == sorted([*before, "model.int8.onnx", "calib_report.md", "calib_report.png"])
    assert not [n for n in after if n.startswith(".")]  # no temporary files left behind
    assert (bundle / "model.onnx").read_bytes() == before["model.onnx"]
    meta = json.loads((bundle / "meta.json").read_text())
    record = meta["int8"]
    assert record["method"] == "minmax" and record["n"] == 8 and record["exclusions"] == ["blocks.1"]
    assert record["data"]["n"] == 8 and len(record["data"]["sha256"]) == 64
    assert record["qdq"]["activation_dtypes"] == ["int8"] and record["quantized_nodes"] == 5
    assert sorted(set(record["float_nodes"].values()))[0] == "--exclude blocks.1"
    assert meta["tasks"] == ["seg", "depth", "normal"]  # the rest of meta.json is kept
    assert record["report"]["INT8"]["speedup"] > 0 and record["report"]["FP16"]["file"] == "model.fp16.onnx"
    assert "| FP16 | model.fp16.onnx |" in (bundle / "calib_report.md").read_text()
    # the runtime still loads the bundle (model.onnx), untouched by calibration, and runs the Q/DQ graph
    frame = frames(1)[0]
    fp32, int8 = load(bundle).infer(frame), load(bundle, precision="int8-qdq").infer(frame)
    assert fp32["depth"].shape == int8["depth"].shape == (1, 56, 56)
    rel = np.abs(fp32["depth"] - int8["depth"]) / fp32["depth"]
    assert 0 < rel.max() < 0.5  # quantised (not identical) yet the same depth map


def test_sensitivity_sweep_on_labelled_data(
    bundle: Path, nyu_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["calib", str(bundle), "--data", str(nyu_folder), "--n", "6", "--method", "minmax"]
    assert main([*argv, "--eval", "none", "--sensitivity", "-q"]) == 2
    assert "--sensitivity needs labelled data" in capsys.readouterr().err
    assert main([*argv, "--eval", str(nyu_folder), "--sensitivity", "--budget", "50", "-q"]) == 0
    report = (bundle / "calib_report.md").read_text()
    assert "| block quantised alone | seg | depth | normal |" in report
    record = json.loads((bundle / "meta.json").read_text())["int8"]
    single = record["sensitivity"]["single"]
    assert sorted(single) == ["blocks.0", "blocks.1", "patch_embed"]
    assert all(np.isfinite(v) for d in single.values() for v in d.values())
    assert record["sensitivity"]["within_budget"] is True and record["sensitivity"]["excluded"] == []
    drops = record["report"]["INT8"]["drops"]
    assert set(drops) == {"seg", "depth", "normal"} and max(drops.values()) <= 50


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing_bundle", "bundle not found"),
        ("empty_folder", "no images"),
        ("bad_video", "not a video OpenCV can decode"),
        ("too_many", "asked for 99 calibration images but the data holds 12"),
        ("bad_input", "do not match meta.json"),
        ("bad_exclude", "matches no weighted node"),
        ("trt_cache", "--trt-cache needs TensorRT"),
    ],
)
def test_bad_input_is_one_line_and_leaves_the_bundle_alone(
    setup: str,
    message: str,
    bundle: Path,
    image_folder: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    target, data, extra = bundle, image_folder, ["--n", "4"]
    if setup == "missing_bundle":
        target = tmp_path / "nope"
    elif setup == "empty_folder":
        data = tmp_path / "empty"
        data.mkdir()
    elif setup == "bad_video":
        data = tmp_path / "clip.mp4"
        data.write_bytes(b"\x00" * 100)
    elif setup == "too_many":
        extra = ["--n", "99"]
    elif setup == "bad_input":
        meta = json.loads((bundle / "meta.json").read_text())
        meta["input"]["name"] = "pixels"
        (bundle / "meta.json").write_text(json.dumps(meta))
    elif setup == "bad_exclude":
        extra += ["--exclude", "blocks.7"]
    else:
        extra += ["--trt-cache"]
    before = _listing(bundle)
    code = main(["calib", str(target), "--data", str(data), "--eval", "none", "-q", *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.count("\n") == 1 and err.startswith("simokit calib: error:")
    assert _listing(bundle) == before

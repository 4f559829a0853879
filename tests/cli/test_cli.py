"""The command line end to end on a tiny recipe, and its one-line errors."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from simokit.cli import main
from simokit.models.checkpoint import load_checkpoint

TINY = [
    "data.size=56",
    "data.train=24",
    "data.val=8",
    "base.encoder=vitnano14",
    "base.steps=3",
    "base.batch=8",
    "base.warmup=1",
    "experts.tasks=[seg, depth, normal]",
    "experts.batch=8",
    "experts.stage1.steps=2",
    "experts.stage1.warmup=1",
    "experts.stage2.steps=2",
    "experts.stage2.warmup=1",
    "eval_batch=8",
]


def _sets() -> list[str]:
    return [a for kv in TINY for a in ("--set", kv)]


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SIMOKIT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_demo_end_to_end_then_cached(cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "-q", "--out", str(out), *_sets()]) == 0
    text = capsys.readouterr().out
    assert "| experts |" in text and "| zeroshot |" in text and "| sum (tap) + head re-align |" in text
    assert (out / "report.md").read_text().count("| zeroshot |") == 1
    assert (out / "bundle" / "model.onnx").is_file() and (out / "profile.json").is_file()
    for name in ("predictions.png", "merge_alpha.png", "merge_tap.png", "profile.png"):
        assert (out / name).stat().st_size > 1000
    merged = load_checkpoint(out / "merged.safetensors")
    assert merged.meta.kind == "merged" and merged.meta.tasks == ("seg", "depth", "normal")
    assert merged.meta.extra["merge"]["selected_by"] == "tap_aligned"
    checkpoints = sorted(p.name for p in cache.rglob("*.safetensors"))
    assert len(checkpoints) == 4 and "base.safetensors" in checkpoints
    stamps = {p: p.stat().st_mtime_ns for p in cache.rglob("*.safetensors")}
    assert main(["demo", "-q", "--out", str(out), *_sets()]) == 0  # second run: everything from cache
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*.safetensors")} == stamps


def test_train_expert_and_eval(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "expert", "--task", "depth", "-q", *_sets()]) == 0
    path = capsys.readouterr().out.strip().splitlines()[-1]
    assert path.endswith(".safetensors") and Path(path).is_file()
    assert main(["eval", path, "-q", *_sets()]) == 0
    assert "depth: abs_err" in capsys.readouterr().out


def test_user_errors_are_one_line_and_nonzero(
    cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--config", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("simokit demo: error: config file not found") and "\n" not in err
    assert main(["eval", str(tmp_path / "none.safetensors"), *_sets()]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert main(["train", "expert", "--task", "colour", *_sets()]) == 2
    assert "unknown task 'colour'" in capsys.readouterr().err


def test_bad_arguments_give_usage_not_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "simokit.cli", "demo", "--bogus"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "usage: simokit demo" in proc.stderr and "Traceback" not in proc.stderr


def test_build_then_inspect_and_run_the_bundle(
    cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import numpy as np

    from simokit.runtime import load
    from simokit.runtime.bundle import GraphIO, read_meta

    out = tmp_path / "bundle"
    assert main(["build", "-q", "--out", str(out), "--verify-images", "4", *_sets()]) == 0
    assert "bundle:" in capsys.readouterr().out
    for name in ("model.onnx", "meta.json", "report.md", "merge_report.md", "merge_alpha.png"):
        assert (out / name).is_file()
    assert read_meta(out).input.io is GraphIO.FRAME  # the default: camera frames in, labels out
    assert main(["inspect", str(out)]) == 0
    assert "output seg: uint8" in capsys.readouterr().out
    assert (out / "experts" / "seg.onnx").is_file()
    assert main(["profile", str(out), "--iters", "2", "--warmup", "1", "--batches", "1,2"]) == 0
    assert "ratio merged/separate p50" in capsys.readouterr().out
    frame = np.random.default_rng(0).integers(0, 256, size=(40, 60, 3), dtype=np.uint8)
    pred = load(out).infer(frame)
    assert pred["seg"].shape == (40, 60) and pred["seg"].dtype == np.uint8
    assert pred["depth"].shape == (1, 40, 60)
    reference = load(out, backend="torch")  # the bundle's merged.safetensors in PyTorch
    ref = reference.infer(frame)
    assert (ref["seg"] == pred["seg"]).mean() > 0.999
    np.testing.assert_allclose(ref["normal"], pred["normal"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(ref["depth"], pred["depth"], rtol=1e-4, atol=0)
    assert reference.describe().startswith("torch")


def test_build_io_defaults_to_frames_unless_the_flags_ask_for_model_size_tensors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from simokit.cli.build import graph_io

    assert graph_io(None, "uint8", False) == "frame"
    assert graph_io(None, "float", False) == "model"  # only a model-size graph takes float tensors
    assert graph_io(None, "uint8", True) == "model"
    assert graph_io("model", "uint8", False) == "model"
    assert graph_io("frame", "uint8", False) == "frame"
    for flags in (["--input", "float"], ["--dynamic-size"]):
        assert main(["build", "--out", str(tmp_path / "b"), "--io", "frame", *flags, *_sets()]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"not {' '.join(flags)}: use --io model" in err[0], err
    assert not (tmp_path / "b").exists()


def test_merge_with_adamerging_tap(cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "merge"
    grids = "merge.grids={sum: [{alpha: 0.3}, {alpha: 0.6}], adamerging_tap: [{iters: 4, batch: 4}]}"
    args = ["merge", "-q", "--out", str(out), *_sets(), "--set", "merge.methods=[sum, adamerging_tap]"]
    assert main([*args, "--set", grids, "--set", "merge.realign=[head]", "--set", "merge.tap_images=8"]) == 0
    report = (out / "merge_report.md").read_text()
    assert (
        "## AdaMerging with the TAP loss" in report and "| adamerging_tap (tap) + head re-align |" in report
    )
    assert "init=0.3" in report or "init=0.6" in report  # started from task arithmetic's selected alpha
    assert (out / "merge_adamerging.png").is_file()


def test_build_routed_bundle_and_run_it(
    cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from simokit.runtime import load
    from simokit.runtime.routed import RoutedEngine

    out = tmp_path / "routed"
    sets = [*_sets(), "--set", "routing.domains=[indoor, outdoor]", "--set", "routing.support=6"]
    assert main(["build", "-q", "--out", str(out), "--verify-images", "2", *sets]) == 0
    text = capsys.readouterr().out
    for row in ("| oracle domain engine |", "| routed (SiM) |", "| one engine merged from all domains |"):
        assert row in text
    assert "Routing accuracy on the test images: indoor" in text
    assert sorted(p.name for p in (out / "domains").iterdir()) == ["indoor", "outdoor"]
    engine = load(out)
    assert isinstance(engine, RoutedEngine)
    frames = np.random.default_rng(0).integers(0, 256, (2, 56, 56, 3), dtype=np.uint8)
    result = engine.infer(frames)
    assert result["depth"].shape == (2, 1, 56, 56) and len(engine.last_domains) == 2
    import cv2

    video = tmp_path / "v.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (56, 56))
    for frame in np.random.default_rng(1).integers(0, 256, (5, 56, 56, 3), dtype=np.uint8):
        writer.write(frame)
    writer.release()
    capsys.readouterr()
    assert main(["run", str(out), "--source", str(video), "--headless", "-q"]) == 0
    text = capsys.readouterr().out
    assert "routed over indoor, outdoor" in text.splitlines()[-1] and "frames" in text.splitlines()[-1]
    assert sum(int(n) for n in re.findall(r"(?:indoor|outdoor) (\d+)[,;]", text.splitlines()[-1])) == 5


def test_build_routed_bundle_as_base_plus_low_rank_deltas(
    cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from simokit.runtime import load
    from simokit.runtime.bundle import read_meta

    out = tmp_path / "routed"
    sets = [*_sets(), "--set", "routing.domains=[indoor, outdoor]", "--set", "routing.support=6"]
    sets += ["--set", "routing.delta=lowrank", "--set", "routing.delta_rank=4"]
    assert main(["build", "-q", "--out", str(out), "--verify-images", "2", *sets]) == 0
    text = capsys.readouterr().out
    assert "| oracle domain engine, uncompressed |" in text and "## This bundle on disk" in text
    assert not (out / "model.onnx").exists()
    assert all((out / "domains" / d / "delta.npz").is_file() for d in ("indoor", "outdoor"))
    storage = read_meta(out).extra["routing"]["storage"]
    assert storage["bundle_bytes"] < storage["full_engine_bytes"]
    assert main(["inspect", str(out)]) == 0
    assert "one base graph plus a weight delta each" in capsys.readouterr().out
    frames = np.random.default_rng(0).integers(0, 256, (2, 56, 56, 3), dtype=np.uint8)
    assert load(out).infer(frames)["normal"].shape == (2, 3, 56, 56)
    assert main(["profile", str(out), "--iters", "2", "--warmup", "1", "--batches", "1"]) == 0
    assert "| router (features + residuals) |" in capsys.readouterr().out
    assert main(["build-engine", str(out)]) == 2
    assert "per-domain weight deltas" in capsys.readouterr().err


def test_delta_bundles_refuse_fp16_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sets = ["--set", "routing.domains=[indoor, outdoor]", "--set", "routing.delta=sparse"]
    assert main(["build", "--out", str(tmp_path / "b"), "--fp16", *sets]) == 2
    assert "only ONNX Runtime opens" in capsys.readouterr().err and not (tmp_path / "b").exists()

"""`simokit build` / `simokit merge` from given experts on frames from a folder, a video and a bag."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from own_helpers import frames, write_avi, write_experts, write_folder, write_mcap, write_nyu

from simokit.cli import main
from simokit.runtime.bundle import read_meta

GRID = [
    "--set", "merge.methods=[sum]",
    "--set", "merge.grids={sum: [{alpha: 0.5}, {alpha: 1.0}]}",
    "--set", "merge.realign=[head]",
    "--set", "merge.realign_images=8",
    "--set", "merge.tap_images=8",
    "--set", "merge.batch=4",
]  # fmt: skip


@pytest.fixture
def material(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[Path], dict[str, str]]:
    """Cache under tmp_path; three tiny experts; the same 8 frames as a folder, an .avi and a bag."""
    monkeypatch.setenv("SIMOKIT_CACHE", str(tmp_path / "cache"))
    base, experts = write_experts(tmp_path)
    bgr = frames(8, 48, 64)
    sources = {
        "folder": str(write_folder(tmp_path / "frames", bgr)),
        "video": str(write_avi(tmp_path / "robot.avi", bgr)),
        "bag": str(write_mcap(tmp_path / "robot.mcap", bgr)),
    }
    return base, experts, sources


def _own(base: Path, experts: list[Path], calib: str) -> list[str]:
    args = ["--base", str(base), "--experts", *map(str, experts), "--calib", calib, "--calib-frames", "8"]
    return args + (["--topic", "/camera/image_raw"] if calib.endswith(".mcap") else [])


@pytest.mark.parametrize("kind", ["folder", "video", "bag"])
def test_build_from_own_experts_and_frames_verifies(
    tmp_path: Path,
    material: tuple[Path, list[Path], dict[str, str]],
    kind: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base, experts, sources = material
    out = tmp_path / "bundle"
    argv = ["build", *_own(base, experts, sources[kind]), "--size", "42x56", "--out", str(out), "-q", *GRID]
    assert main(argv) == 0
    assert main(["inspect", "--verify", str(out)]) == 0
    meta = read_meta(out)
    assert (meta.input.height, meta.input.width) == (42, 56)
    assert meta.extra["frames"]["model_size"] == [42, 56]
    assert meta.extra["frames"]["fit"] == 4 and meta.extra["frames"]["held_out"] == 4
    report = (out / "report.md").read_text()
    assert "## Agreement with the experts on the held-out frames (no labels)" in report
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| model"))
    header, table = lines[start], lines[start + 2 : lines.index("", start)]
    assert "seg pix_acc" in header and "depth abs_rel" in header and "normal mean_angle" in header
    assert report.index("## Agreement") < report.index("## Verification")
    rows = table
    names = [r.split("|")[1].strip() for r in rows]
    assert names == ["experts", "zeroshot", "sum (tap)", "sum (tap) + head re-align",
                     "sum (tap_aligned)", "sum (tap_aligned) + head re-align"]  # fmt: skip
    norms = {r.split("|")[1].strip(): r.split("|")[-2].strip() for r in rows}
    assert norms["experts"] == "**1.000**" and norms["zeroshot"] == "**0.000**"
    assert (out / "side_by_side.png").stat().st_size > 1000 and "![side by side](side_by_side.png)" in report
    assert meta.extra["agreement"]["zeroshot"] == pytest.approx(0.0, abs=1e-9)
    capsys.readouterr()


def test_merge_rerun_with_another_grid_reuses_expert_features(
    tmp_path: Path, material: tuple[Path, list[Path], dict[str, str]]
) -> None:
    base, experts, sources = material
    own = [*_own(base, experts, sources["folder"]), "--size", "42"]
    assert main(["merge", *own, "--out", str(tmp_path / "m1"), "-q", *GRID]) == 0
    store = tmp_path / "cache" / "features"
    first = sorted(p.name for p in store.iterdir())
    grid2 = [*GRID, "--set", "merge.grids={sum: [{alpha: 0.7}]}"]
    assert main(["merge", *own, "--out", str(tmp_path / "m2"), "-q", *grid2]) == 0
    assert (
        sorted(p.name for p in store.iterdir()) == first and len(first) == 4
    )  # base + 3 experts (TAP and fits share images)
    res = json.loads((tmp_path / "m2" / "merge_results.json").read_text())
    assert [c["hparams"] for c in res["candidates"]] == [{"alpha": 0.7}]
    assert res["agreement"]["zeroshot"] == pytest.approx(0.0, abs=1e-9)
    studies = sorted((tmp_path / "cache" / "merge").iterdir())
    assert main(["merge", *own, "--out", str(tmp_path / "m3"), "-q", *grid2]) == 0  # the cached study
    assert sorted((tmp_path / "cache" / "merge").iterdir()) == studies and len(studies) == 2
    m2, m3 = ((tmp_path / m / "merged.safetensors").read_bytes() for m in ("m2", "m3"))
    assert m2 == m3  # the selected model rebuilt from the cache is the one the study made


def test_build_without_calib_refuses_given_experts(
    material: tuple[Path, list[Path], dict[str, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, experts, _ = material
    assert (
        main(["build", "--base", str(base), "--experts", *map(str, experts), "--out", str(tmp_path / "b")])
        == 2
    )
    assert "give --calib too" in capsys.readouterr().err


def test_merge_with_labels_selects_by_eval_and_reports_the_labelled_split(
    tmp_path: Path, material: tuple[Path, list[Path], dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    base, experts, sources = material
    own = [*_own(base, experts, sources["folder"]), "--size", "42"]
    assert (
        main(["merge", *own, "--out", str(tmp_path / "m0"), "-q", *GRID, "--set", "merge.select=eval"]) == 2
    )
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith("merge.select=eval needs labels: give --val DIR, or select by tap / tap_aligned")
    )
    val = write_nyu(tmp_path / "nyu", 42, 42)
    argv = [
        "merge",
        *own,
        "--val",
        str(val),
        "--out",
        str(tmp_path / "m"),
        "-q",
        *GRID,
        "--set",
        "merge.select=eval",
    ]
    assert main(argv) == 0
    report = (tmp_path / "m" / "report.md").read_text()
    assert "sum (eval) + head re-align" in report and "## Labelled test split of --val" in report
    labelled = report[report.index("## Labelled test split") :].split("## Selection")[0]
    assert "| zeroshot |" in labelled and "| experts | - |" in labelled
    res = json.loads((tmp_path / "m" / "merge_results.json").read_text())
    assert res["selected"] == "sum (eval) + head re-align"
    assert all(c["val_score"] == c["val_score"] for c in res["candidates"])  # scored on the labels (not NaN)


def test_tasks_keep_a_subset_of_the_experts(tmp_path: Path) -> None:
    from simokit.errors import ConfigError
    from simokit.pipeline.own_study import chosen_experts

    _, experts = write_experts(tmp_path)
    assert chosen_experts(experts, ("normal", "seg")) == [experts[0], experts[2]]  # the order given
    assert chosen_experts(experts, ()) == experts
    with pytest.raises(
        ConfigError, match="--tasks edge: no expert for it; the experts have seg, depth, normal"
    ):
        chosen_experts(experts, ("edge",))


def test_build_takes_source_format_experts_directly(
    tmp_path: Path, material: tuple[Path, list[Path], dict[str, str]]
) -> None:
    import sys

    import torch

    sys.path.insert(0, str(Path(__file__).parents[1] / "models" / "importers"))
    from da_reference import official_head_state
    from dpt_reference import mmcv_dpt_state, random_encoder

    _, _, sources = material
    base = random_encoder(64, 4, seed=1).state_dict()
    torch.save(base, tmp_path / "dinov2_vits14_pretrain.pth")  # an official backbone .pth

    def tuned() -> dict[str, torch.Tensor]:
        return {k: v + 1e-2 * torch.randn_like(v) for k, v in base.items()}

    seg = mmcv_dpt_state(64, [8, 16, 32, 64], 32, "project", "seg", classes=5, prefix="decoders.seg.")
    args = {"head_archs": "dpt", "out_index": [0, 1, 2, 3], "cls_token": True,
            "head_tasks": {"seg": {"num_classes": 5}}}  # fmt: skip
    simo = {"model_class": "MTLDinoV2", "constructor_args": args}
    simo["state_dict"] = {f"backbone.{k}": v for k, v in tuned().items()} | seg
    torch.save(simo, tmp_path / "simo_seg.pth")  # a SIMO checkpoint with a DPT decoder
    head = official_head_state(64, [8, 16, 32, 64], 16, False, False)
    da = {f"depth_head.{k}": v for k, v in head.items()} | {f"pretrained.{k}": v for k, v in tuned().items()}
    torch.save(da, tmp_path / "depth_anything_v2_s.pth")  # Depth Anything V2, relative depth
    out = tmp_path / "bundle"
    experts = [tmp_path / "simo_seg.pth", tmp_path / "depth_anything_v2_s.pth"]
    argv = ["build", *_own(tmp_path / "dinov2_vits14_pretrain.pth", experts, sources["folder"])]
    assert main([*argv, "--size", "42x56", "--out", str(out), "-q", *GRID]) == 0
    assert main(["inspect", "--verify", str(out)]) == 0
    meta = read_meta(out)
    assert meta.tasks == ("seg", "relative_depth")
    assert meta.outputs["relative_depth"]["kind"] == "disparity"
    assert "relative_depth abs_rel" in (out / "report.md").read_text()

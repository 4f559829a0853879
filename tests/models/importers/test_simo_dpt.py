"""SIMO's DPT decoders (dpt, dpt_small, dpt-add_small for depth, seg and normal) as dinov2_dpt heads:
equal to the source decoder, resized to the image, at two input sizes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from dpt_reference import (
    mmcv_dpt_state,
    random_encoder,
    reference_dpt,
    rel_err,
    run_imported,
    source_features,
)
from onnx_check import assert_onnx_matches

from simokit.errors import CheckpointError, ConfigError
from simokit.models import build_head
from simokit.models.importers import read_models
from simokit.models.importers.formats.simo_dpt import simo_dpt_head

DIM = 64
OUT_INDEX = [0, 1, 2, 3]
ARGS = {
    "arch_name": "vit_small",
    "head_archs": "dpt",
    "out_index": OUT_INDEX,
    "cls_token": False,
    "head_tasks": {"depth": {"min_depth": 0.01, "max_depth": 10.0}, "seg": {"num_classes": 5}},
}
# arch -> (readout, exponent, fusion width as SIMO builds it, scaled down for the test where it is 256)
ARCHS = {"dpt": ("project", 3, 64), "dpt_small": ("project", 5, 32), "dpt-add_small": ("add", 5, 32)}


@pytest.mark.parametrize(
    ("task", "arch", "output", "classes"),
    [
        ("depth", "dpt", "depth", 1),
        ("seg", "dpt_small", "seg", 5),
        ("normal", "dpt-add_small", "normal", 3),
        ("depth", "dpt-add_small", "depth", 1),
    ],
)
def test_simo_dpt_decoder_matches_the_source(task: str, arch: str, output: str, classes: int) -> None:
    readout, exponent, width = ARCHS[arch]
    post = [DIM // 2 ** (exponent - i) for i in range(4)]
    torch.manual_seed(5)
    decoder = mmcv_dpt_state(DIM, post, width, readout, output, classes)
    file_state = {f"decoders.{task}.{k}": v for k, v in decoder.items()}
    cfg, state = simo_dpt_head(task, arch, dict(ARGS, head_archs=arch), file_state)
    assert cfg.kind == "dinov2_dpt" and cfg.layers == tuple(OUT_INDEX) and cfg.norm is False
    assert cfg.out_channels == classes and cfg.dpt_features == width and cfg.options["readout"] == readout
    head = build_head(cfg, DIM).eval()
    head.load_state_dict(state, strict=True)
    enc = random_encoder(DIM, 4, seed=2)
    min_depth = 0.01 if output == "depth" else 0.0
    for size in ((56, 56), (70, 84)):
        x = torch.randn(2, 3, *size)
        with torch.no_grad():
            feats = source_features(enc, x, OUT_INDEX)
            ref = reference_dpt(decoder, feats, readout, output, size, min_depth, None)
            out = head(feats, size)
        assert out.shape == ref.shape == (2, classes, *size)
        assert ref.std().item() > 1e-3
        assert rel_err(out, ref) <= 1e-4, (size, rel_err(out, ref))


def test_simo_file_with_dpt_decoders_imports_and_exports_equal_to_the_source(tmp_path: Path) -> None:
    enc = random_encoder(DIM, 4, seed=3)
    torch.manual_seed(7)
    post = [DIM // 2 ** (3 - i) for i in range(4)]
    decoders = {"depth": mmcv_dpt_state(DIM, post, 64, "project", "depth", 1)}
    decoders["seg"] = mmcv_dpt_state(DIM, post, 64, "project", "seg", 5)
    state = {f"backbone.{k}": v for k, v in enc.state_dict().items()}
    state |= {f"decoders.{t}.{k}": v for t, sd in decoders.items() for k, v in sd.items()}
    torch.save(
        {"model_class": "MTLDinoV2", "constructor_args": ARGS, "state_dict": state}, tmp_path / "s.pth"
    )
    models = read_models(tmp_path / "s.pth")
    assert [(m.format, m.task, m.head.kind) for m in models] == [  # type: ignore[union-attr]
        ("simo", "depth", "dinov2_dpt"), ("simo", "seg", "dinov2_dpt")
    ]  # fmt: skip
    for model, (task, decoder) in zip(models, decoders.items(), strict=True):
        output, min_depth = ("depth", 0.01) if task == "depth" else ("seg", 0.0)
        for size in ((56, 56), (70, 84)):
            x = torch.randn(1, 3, *size)
            with torch.no_grad():
                feats = source_features(enc, x, OUT_INDEX)
                ref = reference_dpt(decoder, feats, "project", output, size, min_depth, None)
            assert rel_err(run_imported(model, x, size), ref) <= 1e-4
            assert_onnx_matches(model, x, ref, tmp_path)


def test_simo_dpt_head_refuses_mismatches() -> None:
    decoder = mmcv_dpt_state(DIM, [DIM // 2 ** (5 - i) for i in range(4)], 32, "project", "depth")
    with pytest.raises(CheckpointError, match=r"widths \[2, 4, 8, 16\] are not dpt.s \[8, 16"):
        simo_dpt_head("depth", "dpt", ARGS, decoder)
    with pytest.raises(CheckpointError, match="readout projections"):
        simo_dpt_head("depth", "dpt-add_small", ARGS, decoder)
    with pytest.raises(CheckpointError, match="output stack is for depth, not seg"):
        simo_dpt_head("seg", "dpt_small", ARGS, decoder)
    with pytest.raises(ConfigError, match="not a DPT"):
        simo_dpt_head("depth", "linear", ARGS, decoder)
    with pytest.raises(CheckpointError, match="reads 4 blocks"):
        simo_dpt_head("depth", "dpt_small", dict(ARGS, out_index=[11]), decoder)

"""Official DINOv2 DPT depth heads: imported head + backbone equal the source depther, and the
dinov2_dpt head kind folds linear feature maps exactly into its readout / projection layers."""

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
from simokit.models import DinoVisionTransformer, HeadConfig, build_head, fold_linear_map
from simokit.models.importers import detect, read_base, read_models, read_source
from simokit.models.importers.formats.dinov2_dpt import dinov2_dpt_head

DIM, WIDTH = 32, 32
POST = [DIM // 2 ** (3 - i) for i in range(4)]


def _write_official(tmp_path: Path, name: str) -> tuple[DinoVisionTransformer, dict[str, torch.Tensor], Path]:
    enc = random_encoder(DIM, 12)
    torch.save(enc.state_dict(), tmp_path / "dinov2_vits14_pretrain.pth")
    torch.manual_seed(3)
    head_sd = mmcv_dpt_state(DIM, POST, WIDTH, "project", "depth")
    path = tmp_path / name
    wrapped = {f"decode_head.{k}": v for k, v in head_sd.items()}
    torch.save({"meta": {"epoch": 1}, "state_dict": wrapped}, path)
    return enc, head_sd, path


@pytest.mark.parametrize("size", [(56, 56), (70, 84)])
def test_official_dpt_head_matches_the_source_depther(tmp_path: Path, size: tuple[int, int]) -> None:
    enc, head_sd, path = _write_official(tmp_path, "dinov2_vits14_nyu_dpt_head.pth")
    (model,) = read_models(path)
    assert model.format == "dinov2_dpt" and model.task == "depth" and model.head is not None
    assert model.head.layers == (2, 5, 8, 11) and model.head.norm is False and model.head.use_cls
    assert model.base_hash  # a frozen backbone is its own base
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        feats = source_features(enc, x, [2, 5, 8, 11])
        ref = reference_dpt(head_sd, list(feats), "project", "depth", size, 0.001, 10.0)
    out = run_imported(model, x, size)
    assert out.shape == ref.shape == (2, 1, *size)
    assert ref.std().item() > 1e-3  # the prediction varies, so the comparison means something
    assert rel_err(out, ref) <= 1e-4
    assert_onnx_matches(model, x, ref, tmp_path)


def test_backbone_given_with_the_head_file_and_dataset_kitti(tmp_path: Path) -> None:
    enc, head_sd, path = _write_official(tmp_path, "renamed_head.pth")
    backbone = tmp_path / "dinov2_vits14_pretrain.pth"
    source = read_source(path)
    importer = detect(source)
    assert importer.name == "dinov2_dpt"
    with pytest.raises(ConfigError, match="nyu from kitti"):
        importer.convert(source)
    source.config = {"dataset": "kitti"}
    with pytest.raises(ConfigError, match="without an encoder; pass the backbone"):
        importer.convert(source)  # a renamed file has no sibling backbone to find
    source.backbone = read_base(backbone)
    (model,) = importer.convert(source)
    assert model.head is not None and model.head.options["max_depth"] == 80.0
    x = torch.randn(1, 3, 56, 70)
    with torch.no_grad():
        feats = source_features(enc, x, [2, 5, 8, 11])
        ref = reference_dpt(head_sd, list(feats), "project", "depth", (56, 70), 0.001, 80.0)
    assert rel_err(run_imported(model, x, (56, 70)), ref) <= 1e-4
    with pytest.raises(ConfigError, match="its own encoder; drop the backbone"):
        read_models(backbone, backbone=backbone)  # a backbone file takes no second backbone


def test_dinov2_dpt_head_refuses_bad_input() -> None:
    sd = {f"decode_head.{k}": v for k, v in mmcv_dpt_state(DIM, POST, WIDTH, "project", "depth").items()}
    with pytest.raises(CheckpointError, match="reads 32-wide features but the encoder is 64 wide"):
        dinov2_dpt_head(sd, 64, "nyu")
    with pytest.raises(ConfigError, match="choose from nyu, kitti"):
        dinov2_dpt_head(sd, DIM, "ade20k")
    with pytest.raises(ConfigError, match="no official DPT block indices"):
        dinov2_dpt_head(sd, DIM, "nyu")
    cfg, _ = dinov2_dpt_head(sd, DIM, "nyu", layers=(0, 1, 2, 3))
    assert cfg.options["min_depth"] == 0.001 and cfg.layers == (0, 1, 2, 3)
    del sd["decode_head.convs.2.conv.weight"]
    with pytest.raises(CheckpointError, match="missing"):
        dinov2_dpt_head(sd, DIM, "nyu", layers=(0, 1, 2, 3))


def _transform(feats: list[tuple[torch.Tensor, torch.Tensor]], maps: dict, layers: tuple[int, ...]) -> list:
    out = []
    for (patch, cls), layer in zip(feats, layers, strict=True):
        (ap, cp), (ac, cc) = maps[(layer, "patch")], maps[(layer, "cls")]
        out.append((torch.einsum("ij,bjhw->bihw", ap, patch) + cp[:, None, None], cls @ ac.T + cc))
    return out


@pytest.mark.parametrize(
    "options",
    [
        {"readout": "project", "output": "depth", "min_depth": 0.1, "max_depth": 10.0},
        {"readout": "add", "output": "seg", "fusion_bn": True, "residual_bias": True},
        {"readout": "ignore", "output": "seg", "project": False, "native": "head"},
    ],
)
def test_fold_linear_map_into_dinov2_dpt_consumers(options: dict) -> None:
    torch.manual_seed(0)
    layers = (0, 2, 3, 5)
    cfg = HeadConfig("dinov2_dpt", 1 if options["output"] == "depth" else 3, layers=layers,
                     use_cls=options["readout"] != "ignore", dpt_features=16, options=options)  # fmt: skip
    head = build_head(cfg, DIM).double().eval()
    with torch.no_grad():
        for p in head.parameters():
            p.add_(0.1 * torch.randn_like(p))
        for name, b in head.named_buffers():
            if name.endswith("running_mean"):
                b.normal_(0, 0.2)
            elif name.endswith("running_var"):
                b.uniform_(0.5, 1.5)
        head.output_layer().bias.fill_(1.0)  # keeps the depth ReLU mostly open
    g = torch.Generator().manual_seed(1)

    def affine() -> tuple[torch.Tensor, torch.Tensor]:
        noise = torch.randn(DIM, DIM, generator=g, dtype=torch.float64)
        a = torch.eye(DIM, dtype=torch.float64) + 0.3 * noise
        return a, 0.5 * torch.randn(DIM, generator=g, dtype=torch.float64)

    maps = {(layer, part): affine() for layer in layers for part in ("patch", "cls")}
    feats = [(torch.randn(2, DIM, 3, 4, dtype=torch.float64), torch.randn(2, DIM, dtype=torch.float64))] * 4
    feats = [(p + i, c - i) for i, (p, c) in enumerate(feats)]
    consumers = head.consumers()
    assert len(consumers) == 4 * (2 if cfg.use_cls else 1)
    if options["readout"] == "project":
        assert all(isinstance(c.conv, torch.nn.Linear) for c in consumers)
    with torch.no_grad():
        expected = head(_transform(feats, maps, layers), (28, 42))
        for consumer in consumers:
            fold_linear_map(consumer, *maps[(consumer.layer, consumer.part)])
        folded = head(feats, (28, 42))
    assert expected.std().item() > 1e-3
    assert (folded - expected).abs().max().item() <= 1e-5


def test_native_size_and_option_checks() -> None:
    base = {"readout": "project", "output": "depth"}
    head = build_head(HeadConfig("dinov2_dpt", 1, layers=(0, 1, 2, 3), use_cls=True, options=base), DIM)
    assert head.native_size(70, 84) == (70, 84)
    hf = dict(base, native="head", patch_size=14)
    head = build_head(HeadConfig("dinov2_dpt", 1, layers=(0, 1, 2, 3), use_cls=True, options=hf), DIM)
    assert head.native_size(56, 70) == (64, 96)  # grids 4 and 5 -> 32 * ceil(grid / 2)
    with pytest.raises(ConfigError, match="unknown"):
        build_head(HeadConfig("dinov2_dpt", 1, layers=(0, 1, 2, 3), use_cls=True, options={"bins": 3}), DIM)
    with pytest.raises(ConfigError, match="use_cls is False"):
        build_head(HeadConfig("dinov2_dpt", 1, layers=(0, 1, 2, 3), options=base), DIM)
    with pytest.raises(ConfigError, match="4 encoder blocks"):
        build_head(HeadConfig("dinov2_dpt", 1, layers=(0, 1), use_cls=True, options=base), DIM)

"""Official DINOv2 dense heads paired with their backbone: imported experts equal the source formulas."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from dpt_reference import run_imported
from linear_reference import (
    DIM,
    SIZES,
    assert_fold_exact,
    bn_conv_reference,
    depth_reference,
    random_bn,
    random_conv,
    run_saved,
    source_features,
    tiny_backbone,
)
from onnx_check import assert_onnx_matches

from simokit.errors import CheckpointError, ConfigError
from simokit.models.checkpoint import state_hash
from simokit.models.importers import import_model, read_models


def _save_backbone(tmp_path: Path, depth: int = 12) -> tuple[Path, torch.nn.Module]:
    encoder = tiny_backbone(depth)
    path = tmp_path / "dinov2_vitt14_pretrain.pth"
    torch.save(encoder.state_dict(), path)
    return path, encoder


def _save_head(tmp_path: Path, name: str, head: dict[str, torch.Tensor]) -> Path:
    path = tmp_path / name
    torch.save({"state_dict": {f"decode_head.{k}": v for k, v in head.items()}}, path)
    return path


@pytest.mark.parametrize(
    ("name", "depth", "blocks"), [("nyu_linear", 3, [2]), ("kitti_linear4", 12, [2, 5, 8, 11])]
)
def test_depth_head_matches_the_source_formula(
    tmp_path: Path, name: str, depth: int, blocks: list[int]
) -> None:
    backbone, encoder = _save_backbone(tmp_path, depth)
    g = torch.Generator().manual_seed(1)
    head = random_conv("conv_depth", 256, 2 * DIM * len(blocks), g, scale=0.5)
    path = _save_head(tmp_path, f"dinov2_vitt14_{name}_head.pth", head)
    model = import_model(path, backbone=backbone)
    depth_range = (0.001, 10.0) if name.startswith("nyu") else (0.001, 80.0)
    assert model.format == "dinov2_heads" and model.task == "depth" and model.head is not None
    assert model.head.kind == "linear_depth" and model.head.layers == tuple(blocks)
    assert not model.head.norm and model.head.use_cls
    assert model.base_hash == state_hash(model.encoder) == state_hash(read_models(backbone)[0].encoder)
    for size in SIZES:
        x = torch.randn(2, 3, *size, generator=g)
        want = depth_reference(
            source_features(encoder, x, blocks, norm=False), head, True, depth_range, True, size
        )
        got = run_imported(model, x)
        assert got.shape == (2, 1, *size)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=0.0)
        assert want.std() > 1e-3 * want.mean()  # the bins spread: the comparison is not of constants
        assert_onnx_matches(model, x, want, tmp_path)
    torch.testing.assert_close(
        run_saved(model, tmp_path / "expert.safetensors", x), want, rtol=1e-4, atol=0.0
    )
    assert_fold_exact(model)


@pytest.mark.parametrize(("dataset", "classes"), [("ade20k", 150), ("voc2012", 21)])
def test_segmentation_head_matches_the_source_formula(tmp_path: Path, dataset: str, classes: int) -> None:
    backbone, encoder = _save_backbone(tmp_path, depth=3)
    g = torch.Generator().manual_seed(2)
    head = {**random_bn(DIM, g), **random_conv("conv_seg", classes, DIM, g, scale=0.3)}
    path = _save_head(tmp_path, f"dinov2_vitt14_{dataset}_linear_head.pth", head)
    model = import_model(path, backbone=backbone)
    assert model.task == "seg" and model.head is not None and model.head.kind == "linear"
    assert model.head.layers == (2,) and model.head.norm and not model.head.use_cls and model.head.batch_norm
    assert model.classes == tuple(f"class_{i}" for i in range(classes))
    for size in SIZES:
        x = torch.randn(2, 3, *size, generator=g)
        want = bn_conv_reference(source_features(encoder, x, [2], norm=True), head, "conv_seg", False, size)
        torch.testing.assert_close(run_imported(model, x), want, rtol=1e-4, atol=1e-4)
        assert_onnx_matches(model, x, want, tmp_path)
    assert_fold_exact(model)


def _seg_head(width: int, classes: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    return {**random_bn(width, g), **random_conv("conv_seg", classes, width, g)}


def test_head_files_refuse_bad_input_in_one_line(tmp_path: Path) -> None:
    backbone, _ = _save_backbone(tmp_path, depth=2)
    g = torch.Generator().manual_seed(3)
    four = _save_head(
        tmp_path, "dinov2_vitt14_nyu_linear4_head.pth", random_conv("conv_depth", 256, 8 * DIM, g)
    )
    cases = [
        (four, backbone, CheckpointError, "12, 24 and 40-block"),  # reads blocks a 2-block encoder lacks
        (four, None, ConfigError, "--backbone"),
        (
            "dinov2_vitt14_ade20k_linear_head.pth",
            _seg_head(DIM, 21, g),
            CheckpointError,
            "21 classes but ade20k",
        ),
        ("dinov2_vitt14_voc2012_ms_head.pth", _seg_head(4 * DIM, 21, g), ConfigError, "multi-scale"),
        ("depth_head.pth", random_conv("conv_depth", 256, 2 * DIM, g), ConfigError, "depth range"),
        (
            "dinov2_vitt14_nyu_linear_head.pth",
            random_conv("conv_depth", 2, 4 * DIM, g),
            CheckpointError,
            "read 1",
        ),
    ]
    for name_or_path, head_or_pair, error, message in cases:
        if isinstance(head_or_pair, dict):
            path, pair = _save_head(tmp_path, str(name_or_path), head_or_pair), backbone
        else:
            path, pair = Path(name_or_path), head_or_pair
        with pytest.raises(error, match=message) as info:
            import_model(path, backbone=pair)
        assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="its own encoder"):
        import_model(backbone, backbone=backbone)

"""SIMO checkpoints (MTLDinoV2 torch_save layout): every linear decoder equals the source formulas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
from simokit.models.importers import detect, import_model, known_formats, read_models, read_source

HEAD_TASKS = {
    "segment_semantic": {"num_classes": 7},
    "depth": {"min_depth": 0.01, "max_depth": 12.0},
    "normal": {"num_classes": 3},
}


def _decoders(arch: str, blocks: int, cls: bool, g: torch.Generator) -> dict[str, torch.Tensor]:
    width = DIM * blocks * (2 if cls else 1)
    out = {}
    for name, conv, channels in (("segment_semantic", "conv_seg", 7), ("normal", "conv_normal", 3)):
        out.update({f"decoders.{name}.{k}": v for k, v in random_bn(width, g).items()})
        out.update({f"decoders.{name}.{k}": v for k, v in random_conv(conv, channels, width, g, 0.3).items()})
    bins = 256 if arch == "linear_bins" else 1
    out.update({f"decoders.depth.{k}": v for k, v in random_conv("conv_depth", bins, width, g, 0.5).items()})
    return out


def _save(tmp_path: Path, encoder: torch.nn.Module, decoders: dict, args: dict[str, Any]) -> Path:
    state = {f"backbone.{k}": v for k, v in encoder.state_dict().items()} | decoders
    constructor = {"arch_name": "vit_tiny", "ffn_layer": "mlp", "pretrained": True, **args}
    path = tmp_path / "simo_expert.pth"
    torch.save(
        {
            "model_class": "MTLDinoV2",
            "constructor_args": constructor,
            "head_tasks": args["head_tasks"],
            "state_dict": state,
        },
        path,
    )
    return path


@pytest.mark.parametrize(
    ("arch", "out_index", "cls"), [("linear", [1, 3, 2, 0], True), ("linear_bins", [3], False)]
)
def test_simo_linear_decoders_match_the_source_formulas(
    tmp_path: Path, arch: str, out_index: list[int], cls: bool
) -> None:
    encoder = tiny_backbone(depth=4, seed=5)
    g = torch.Generator().manual_seed(6)
    decoders = _decoders(arch, len(out_index), cls, g)
    args = {"head_tasks": HEAD_TASKS, "head_archs": arch, "out_index": out_index, "cls_token": cls}
    path = _save(tmp_path, encoder, decoders, args)
    assert detect(read_source(path)).name == "simo"
    assert known_formats().index("simo") < known_formats().index("dinov2")
    models = read_models(path)
    assert [(m.format, m.task) for m in models] == [("simo", "seg"), ("simo", "depth"), ("simo", "normal")]
    blocks = sorted(out_index)  # the source returns blocks in block order, whatever out_index's order
    for source_task, model in zip(HEAD_TASKS, models, strict=True):
        assert model.head is not None and model.head.layers == tuple(blocks) and not model.head.norm
        assert model.head.use_cls == cls and model.base_hash == ""
        head = {
            k.split(".", 2)[2]: v for k, v in decoders.items() if k.startswith(f"decoders.{source_task}.")
        }
        for size in SIZES:
            x = torch.randn(2, 3, *size, generator=g)
            feats = source_features(encoder, x, blocks, norm=False)
            if model.task == "depth":
                want = depth_reference(feats, head, cls, (0.01, 12.0), False, size)
                torch.testing.assert_close(run_imported(model, x), want, rtol=1e-4, atol=0.0)
            else:
                conv = "conv_seg" if model.task == "seg" else "conv_normal"
                want = bn_conv_reference(feats, head, conv, cls, size)
                torch.testing.assert_close(run_imported(model, x), want, rtol=1e-4, atol=1e-4)
            assert_onnx_matches(model, x, want, tmp_path)
        assert_fold_exact(model)
        saved = run_saved(model, tmp_path / f"{model.task}.safetensors", x)
        torch.testing.assert_close(saved, want, rtol=1e-4, atol=1e-4)
    assert models[0].classes == tuple(f"class_{i}" for i in range(7))
    assert import_model(path, task="normal").head == models[2].head


def test_simo_refuses_bad_input_in_one_line(tmp_path: Path) -> None:
    encoder = tiny_backbone(depth=2, seed=7)
    g = torch.Generator().manual_seed(8)
    base = {"head_tasks": HEAD_TASKS, "head_archs": "linear", "out_index": [1], "cls_token": True}
    cases = [
        ({**base, "out_index": [5]}, _decoders("linear", 1, True, g), CheckpointError, r"block\(s\) \[5\]"),
        (
            {**base, "head_tasks": {**HEAD_TASKS, "segment_semantic": {"num_classes": 9}}},
            _decoders("linear", 1, True, g), CheckpointError, "num_classes=9",
        ),
        ({**base, "head_archs": "upernet"}, _decoders("linear", 1, True, g), ConfigError, "'upernet'"),
        (
            {**base, "head_archs": "dpt_small"}, _decoders("linear", 1, True, g), CheckpointError,
            "reads 4 blocks, but out_index is",
        ),
        ({**base, "head_tasks": {"disp": {}}}, {}, ConfigError, "disp have no simokit task"),
        ({**base, "head_archs": "linear_bins"}, _decoders("linear", 1, True, g), CheckpointError, "not bins"),
    ]  # fmt: skip
    for args, decoders, error, message in cases:
        path = _save(tmp_path, encoder, decoders, args)
        with pytest.raises(error, match=message) as info:
            read_models(path)
        assert "\n" not in str(info.value)
    path = _save(tmp_path, encoder, _decoders("linear", 1, True, g), base)
    with pytest.raises(ConfigError, match="holds heads for seg, depth, normal"):
        import_model(path)
    head = tmp_path / "dinov2_vitt14_nyu_linear_head.pth"
    torch.save(
        {
            "state_dict": {
                f"decode_head.{k}": v for k, v in random_conv("conv_depth", 256, 2 * DIM, g).items()
            }
        },
        head,
    )
    with pytest.raises(ConfigError, match="bare encoder"):
        import_model(head, backbone=path)

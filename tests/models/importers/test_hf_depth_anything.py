"""Hugging Face DepthAnythingForDepthEstimation folders import to an encoder and a da_dpt head whose
output equals transformers' predicted_depth at two input sizes, relative and metric."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from da_reference import save_hf_depth_anything
from onnx_check import assert_onnx_matches

from simokit.errors import CheckpointError
from simokit.models import MultiTaskModel, build_encoder, build_head
from simokit.models.convert import convert_hf_dinov2
from simokit.models.importers import detect, import_model, read_source
from simokit.models.importers.formats.hf_depth_anything import hf_head_state

transformers = pytest.importorskip("transformers")

SIZES = ((56, 56), (70, 84))


@pytest.mark.parametrize(
    ("kind", "max_depth", "task"), [("relative", 1, "relative_depth"), ("metric", 10, "depth")]
)
def test_import_matches_transformers(tmp_path: Path, kind: str, max_depth: int, task: str) -> None:
    reference = save_hf_depth_anything(tmp_path / "da", kind, max_depth)
    assert detect(read_source(tmp_path / "da")).name == "hf_depth_anything"
    model = import_model(tmp_path / "da")
    assert model.task == task and model.head is not None and model.head.layers == (1, 2, 4, 5)
    encoder = build_encoder(model.vit)
    encoder.load_state_dict(model.encoder)
    head = build_head(model.head, 64)
    head.load_state_dict(model.head_state)
    net = MultiTaskModel(encoder, {task: head}).eval()
    for h, w in SIZES:
        x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(w))
        with torch.no_grad():
            ref = reference(pixel_values=x).predicted_depth
            out = net(x)[task][:, 0]
        assert head.native_size(h, w) == tuple(ref.shape[-2:])
        assert ref.abs().max() > 0.1
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))
        assert_onnx_matches(model, x, ref, tmp_path)


def test_unsupported_configs_are_refused(tmp_path: Path) -> None:
    save_hf_depth_anything(tmp_path / "da", "relative")
    config_path = tmp_path / "da" / "config.json"
    config = json.loads(config_path.read_text())
    config["backbone_config"]["reshape_hidden_states"] = True
    config_path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="reshape_hidden_states"):
        import_model(tmp_path / "da")
    config["backbone_config"]["reshape_hidden_states"] = False
    config["backbone_config"]["out_indices"] = [1, 2, 3]
    config_path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="4 blocks"):
        import_model(tmp_path / "da")


def test_the_same_weights_in_the_official_layout_give_the_same_depth(tmp_path: Path) -> None:
    # The official layout records neither the head count nor the blocks read: one 64-wide attention head
    # and V2's evenly spread blocks (0, 2, 3, 5) for 6 blocks, i.e. stages 1, 3, 4, 6.
    reference = save_hf_depth_anything(tmp_path / "da", "relative", heads=1, stages=(1, 3, 4, 6))
    hf = {k: v.detach() for k, v in reference.state_dict().items()}
    official = {f"pretrained.{k}": v for k, v in convert_hf_dinov2(
        {k[len("backbone.") :]: v for k, v in hf.items() if k.startswith("backbone.")}
    ).items()}  # fmt: skip
    official.update({f"depth_head.{k}": v for k, v in hf_head_state(hf).items()})
    torch.save(official, tmp_path / "depth_anything_v2_custom.pth")
    model = import_model(tmp_path / "depth_anything_v2_custom.pth", fmt="depth_anything_v2")
    encoder = build_encoder(model.vit)
    encoder.load_state_dict(model.encoder)
    assert model.head is not None and model.head.layers == (0, 2, 3, 5)
    head = build_head(model.head, 64)
    head.load_state_dict(model.head_state)
    x = torch.randn(1, 3, 42, 42, generator=torch.Generator().manual_seed(5))  # the native grid
    with torch.no_grad():
        feats = encoder.get_intermediate_layers(x, n=[1, 2, 4, 5], reshape=True, return_class_token=True)
        ref = reference(pixel_values=x).predicted_depth
        torch.testing.assert_close(
            head(list(feats), (42, 42))[:, 0], ref, rtol=1e-4, atol=1e-4 * float(ref.max())
        )

"""Hugging Face DPTForDepthEstimation with a DINOv2 backbone: the imported expert's depth equals
transformers' predicted_depth (at the head's own resolution) at two input sizes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from dpt_reference import VARIANTS, hf_dpt_model, rel_err, run_imported
from onnx_check import assert_onnx_matches

from simokit.errors import CheckpointError
from simokit.models import build_head
from simokit.models.checkpoint import load_checkpoint, model_from_checkpoint
from simokit.models.importers import read_models, save_imported
from simokit.models.importers.formats.hf_dpt import hf_dpt_head, processor_normalisation
from simokit.models.importers.source import Source

transformers = pytest.importorskip("transformers", reason="transformers is the reference for HF formats")


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_hf_dpt_matches_transformers(tmp_path: Path, variant: str) -> None:
    hf = hf_dpt_model(variant)
    hf.save_pretrained(tmp_path)
    (model,) = read_models(tmp_path)
    assert model.format == "hf_dpt" and model.task == "depth" and model.head is not None
    assert model.head.layers == (0, 1, 2, 3) and model.head.norm is (variant != "ignore_no_layernorm")
    assert model.vit.interpolate_offset == 0.0  # transformers resamples positions without the offset
    head_size = None
    for size in ((56, 56), (70, 84)):
        x = torch.randn(1, 3, *size)
        with torch.no_grad():
            ref = hf(pixel_values=x).predicted_depth
        head_size = build_head(model.head, model.vit.embed_dim).native_size(*size)
        assert tuple(ref.shape[-2:]) == head_size
        out = run_imported(model, x, head_size)
        assert ref.std().item() > 1e-3
        assert rel_err(out[:, 0], ref) <= 1e-4, (size, rel_err(out[:, 0], ref))
        assert_onnx_matches(model, x, ref, tmp_path)
    assert head_size == (96, 96)


def _config(**overrides: Any) -> dict[str, Any]:
    config = transformers.DPTConfig(
        backbone_config=dict(model_type="dinov2", hidden_size=32, num_hidden_layers=4, num_attention_heads=1,
                             out_indices=[1, 2, 3, 4], reshape_hidden_states=False)
    ).to_dict()  # fmt: skip
    config.update(overrides)
    return json.loads(json.dumps(config))


def test_hf_dpt_refuses_other_backbones_and_layouts() -> None:
    with pytest.raises(CheckpointError, match="DPT with a ViT hybrid backbone is not supported"):
        hf_dpt_head(_config(is_hybrid=True, backbone_config=None), {}, "x")
    with pytest.raises(CheckpointError, match="DPT with a beit backbone is not supported"):
        hf_dpt_head(_config(backbone_config={"model_type": "beit"}), {}, "x")
    bad_reshape = _config()
    bad_reshape["backbone_config"]["reshape_hidden_states"] = True
    with pytest.raises(CheckpointError, match="reshape_hidden_states"):
        hf_dpt_head(bad_reshape, {}, "x")
    with pytest.raises(CheckpointError, match="DPTForSemanticSegmentation"):
        hf_dpt_head(_config(architectures=["DPTForSemanticSegmentation"]), {}, "x")
    with pytest.raises(CheckpointError, match="keys this importer does not know"):
        hf_dpt_head(_config(), {"neck.mystery.weight": torch.zeros(1)}, "x")


def test_hf_dpt_expert_round_trips_through_a_simokit_checkpoint(tmp_path: Path) -> None:
    hf = hf_dpt_model("project", seed=1)
    hf.save_pretrained(tmp_path / "hf")
    (model,) = read_models(tmp_path / "hf")
    ck = load_checkpoint(save_imported(model, tmp_path / "expert.safetensors"))
    assert ck.meta.extra["import"]["format"] == "hf_dpt"
    multi = model_from_checkpoint(ck)
    x = torch.randn(1, 3, 70, 56)
    with torch.no_grad():
        ref = hf(pixel_values=x).predicted_depth
        out = multi(x)["depth"]  # predicted at the input size: the head's map resized bilinearly
        head = multi.heads["depth"]
        feats = multi.features(x)
        sites = [(i, head.cfg.norm) for i in multi.head_layers("depth")]  # type: ignore[union-attr]
        native = head([feats[s] for s in sites], head.native_size(70, 56))
    assert out.shape == (1, 1, 70, 56)
    assert rel_err(native[:, 0], ref) <= 1e-4


@pytest.mark.parametrize(
    ("processor", "mean", "std"),
    [
        # the converted DINOv2 DPTs normalise 0..255 pixels with ImageNet statistics times 255
        (dict(do_rescale=False, image_mean=[123.675, 116.28, 103.53], image_std=[58.395, 57.12, 57.375]),
         (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        (dict(), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),  # the DPT image processor's defaults
    ],
)  # fmt: skip
def test_hf_dpt_normalisation_from_the_image_processor(
    tmp_path: Path, processor: dict, mean: tuple, std: tuple
) -> None:
    transformers.DPTImageProcessor(**processor).save_pretrained(tmp_path)
    got_mean, got_std = processor_normalisation(Source(tmp_path / "model.safetensors", {}, {}))
    assert got_mean == pytest.approx(mean, abs=1e-6) and got_std == pytest.approx(std, abs=1e-6)

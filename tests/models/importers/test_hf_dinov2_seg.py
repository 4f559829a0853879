"""Hugging Face DINOv2 linear segmentation: import equals transformers' Dinov2Model + 1x1 conv classifier.

The reference follows the common Dinov2ForSemanticSegmentation form: last_hidden_state without the
CLS (and register) tokens, reshaped to the patch grid, a 1x1 conv, bilinear upsampling to the input.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from simokit.errors import CheckpointError
from simokit.models import MultiTaskModel, build_encoder, build_head, fold_linear_map
from simokit.models.importers import detect, import_model, read_source

transformers = pytest.importorskip("transformers")
CLASSES = 5


def _hf_seg(tmp_path: Path, registers: bool = False, seed: int = 0) -> tuple[Any, torch.nn.Conv2d, Path]:
    """A random HF DINOv2 (+ registers) and conv classifier, saved as a save_pretrained-style folder."""
    torch.manual_seed(seed)
    kwargs = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=1, image_size=56, patch_size=14,
                  layerscale_value=0.5)  # fmt: skip
    if registers:
        config = transformers.Dinov2WithRegistersConfig(num_register_tokens=4, **kwargs)
        backbone = transformers.Dinov2WithRegistersModel(config)
    else:
        config = transformers.Dinov2Config(**kwargs)
        backbone = transformers.Dinov2Model(config)
    with torch.no_grad():
        for p in backbone.parameters():
            p.add_(0.1 * torch.randn_like(p))
    conv = torch.nn.Conv2d(64, CLASSES, 1)
    state = {f"dinov2.{k}": v for k, v in backbone.state_dict().items()}
    state.update({f"classifier.classifier.{k}": v for k, v in conv.state_dict().items()})
    folder = tmp_path / "hf_seg"
    folder.mkdir()
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    cfg = config.to_dict() | {"architectures": ["Dinov2ForSemanticSegmentation"],
                              "id2label": {str(i): f"c{i}" for i in range(CLASSES)}}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(cfg))
    return backbone.eval(), conv.eval(), folder


def _reference(backbone: Any, conv: torch.nn.Conv2d, x: torch.Tensor, registers: int) -> torch.Tensor:
    """Patch tokens of the last hidden state -> grid -> 1x1 conv -> bilinear to the input size."""
    tokens = backbone(pixel_values=x).last_hidden_state[:, 1 + registers :]
    h, w = x.shape[2] // 14, x.shape[3] // 14
    logits = conv(tokens.reshape(x.shape[0], h, w, -1).permute(0, 3, 1, 2))
    return F.interpolate(logits, size=x.shape[2:], mode="bilinear", align_corners=False)


def _ours(model: Any) -> MultiTaskModel:
    vit = model.vit
    encoder = build_encoder(vit)
    encoder.load_state_dict(model.encoder, strict=True)
    head = build_head(model.head, vit.embed_dim)
    head.load_state_dict(model.head_state, strict=True)
    return MultiTaskModel(encoder, {"seg": head}).eval()


@pytest.mark.parametrize("registers", [False, True])
def test_import_matches_transformers_at_two_sizes(tmp_path: Path, registers: bool) -> None:
    backbone, conv, folder = _hf_seg(tmp_path, registers)
    assert detect(read_source(folder)).name == "hf_dinov2_seg"
    model = import_model(folder)
    assert (model.task, model.head.kind, model.head.layers) == ("seg", "linear", (-1,))  # type: ignore[union-attr]
    assert model.classes == tuple(f"c{i}" for i in range(CLASSES)) and model.input_size == (56, 56)
    # the imported encoder resamples positions as transformers does, so it agrees at any size
    assert model.vit.interpolate_offset == 0.0
    for size in ((56, 56), (70, 84)):
        x = torch.randn(2, 3, *size)
        with torch.no_grad():
            ref = _reference(backbone, conv, x, 4 if registers else 0)
            out = _ours(model)(x)["seg"]
        assert out.shape == ref.shape == (2, CLASSES, *size)
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-4)


def test_fold_on_the_imported_head(tmp_path: Path) -> None:
    _, _, folder = _hf_seg(tmp_path)
    model = _ours(import_model(folder)).double()
    head = model.heads["seg"]
    feats = [(torch.randn(1, 64, 4, 5, dtype=torch.float64), torch.randn(1, 64, dtype=torch.float64))]
    a, c = torch.randn(64, 64, dtype=torch.float64), torch.randn(64, dtype=torch.float64)
    mapped = [(torch.einsum("ij,bjhw->bihw", a, p) + c[:, None, None], cls @ a.T + c) for p, cls in feats]
    with torch.no_grad():
        expected = head(mapped, (28, 28))
        for consumer in head.consumers():
            fold_linear_map(consumer, a, c)
        torch.testing.assert_close(head(feats, (28, 28)), expected, rtol=0, atol=1e-5)


def test_class_count_disagreeing_with_config_is_refused(tmp_path: Path) -> None:
    _, _, folder = _hf_seg(tmp_path)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["id2label"] = {"0": "a", "1": "b"}
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="id2label has 2 classes but the classifier outputs 5"):
        import_model(folder)


def test_placeholder_labels_count_as_no_names(tmp_path: Path) -> None:
    _, _, folder = _hf_seg(tmp_path)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["id2label"] = {"0": "LABEL_0", "1": "LABEL_1"}  # what transformers writes when none were given
    (folder / "config.json").write_text(json.dumps(cfg))
    assert import_model(folder).classes == tuple(f"class_{i}" for i in range(CLASSES))

"""Bare DINOv2 backbones import to the same encoder, and foreign files merge as experts directly."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from transformers import Dinov2Config, Dinov2Model

from simokit.errors import CheckpointError
from simokit.merge.inputs import load_inputs
from simokit.models import HeadConfig, MultiTaskModel, build_encoder, build_head
from simokit.models.checkpoint import CheckpointMeta, load_checkpoint, save_checkpoint, state_hash
from simokit.models.importers import import_model, load_any, save_imported
from simokit.models.importers.infer import infer_vit_config


@pytest.mark.parametrize("variant", ["vits14", "vitb14_reg"])
def test_official_backbone_shapes_give_the_hub_architecture(variant: str) -> None:
    reference = build_encoder(variant)
    config = infer_vit_config(reference.state_dict())
    assert config.embed_dim == reference.config.embed_dim and config.depth == reference.config.depth
    assert config.num_heads == reference.config.num_heads
    assert config.num_register_tokens == reference.config.num_register_tokens
    assert config.interpolate_offset == reference.config.interpolate_offset
    assert config.interpolate_antialias == reference.config.interpolate_antialias


def test_official_pth_imports_and_round_trips(tmp_path: Path) -> None:
    torch.manual_seed(0)
    # shapes cannot show the head count: official models all use 64-wide heads, so this one does too
    reference = build_encoder("vitnano14", embed_dim=128, num_heads=2, img_size=70).eval()
    torch.save(reference.state_dict(), tmp_path / "backbone.pth")
    model = import_model(tmp_path / "backbone.pth")
    assert model.format == "dinov2" and not model.is_expert
    out = save_imported(model, tmp_path / "base.safetensors")
    ck = load_checkpoint(out)
    assert ck.meta.kind == "base" and ck.meta.extra["import"]["format"] == "dinov2"
    encoder = build_encoder(model.vit).eval()
    encoder.load_state_dict(ck.encoder, strict=True)
    x = torch.randn(2, 3, 56, 84)
    with torch.no_grad():
        torch.testing.assert_close(encoder(x), reference(x), rtol=0, atol=0)


def test_hugging_face_folder_imports_as_base(tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = Dinov2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        image_size=56, patch_size=14,
    )  # fmt: skip
    hf = Dinov2Model(config).eval()
    hf.save_pretrained(tmp_path / "hf")
    model = import_model(tmp_path / "hf")
    assert model.format == "hf_dinov2" and model.vit.embed_dim == 32
    encoder = build_encoder(model.vit).eval()
    encoder.load_state_dict(model.encoder, strict=True)
    x = torch.randn(1, 3, 56, 56)
    with torch.no_grad():
        torch.testing.assert_close(encoder(x), hf(pixel_values=x).pooler_output, rtol=1e-4, atol=1e-4)


class _Custom:
    pass


def test_unknown_layout_and_pickled_code_are_refused_in_one_line(tmp_path: Path) -> None:
    torch.save({"weights": {"a.b": torch.zeros(2)}, "epoch": 3}, tmp_path / "odd.pth")
    with pytest.raises(
        CheckpointError, match=r"odd\.pth: no known format \(top-level keys: weights, epoch\)"
    ):
        import_model(tmp_path / "odd.pth")
    with open(tmp_path / "code.pth", "wb") as f:
        pickle.dump({"model": _Custom()}, f)
    with pytest.raises(CheckpointError, match=r"code\.pth needs arbitrary code to unpickle"):
        import_model(tmp_path / "code.pth")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_any(tmp_path / "missing.pth")


def test_merge_inputs_accept_an_imported_base_beside_simokit_experts(tmp_path: Path) -> None:
    torch.manual_seed(0)
    heads = {
        "seg": build_head(HeadConfig("linear", 11, "none", batch_norm=True), 64),
        "depth": build_head(HeadConfig("linear", 1, "exp", norm=False), 64),
        "normal": build_head(HeadConfig("linear", 3, "normalize"), 64),
    }
    model = MultiTaskModel(build_encoder("vitnano14", embed_dim=64, num_heads=1), heads)
    base = model.encoder.state_dict()
    torch.save(base, tmp_path / "base.pth")  # the base as an official-layout .pth
    experts: list[str | Path] = []
    for task, head in model.heads.items():
        meta = CheckpointMeta(
            kind="expert",
            encoder=model.encoder.config.to_dict(),
            heads={task: head.cfg.to_dict()},  # type: ignore[operator,union-attr]
            classes=tuple(f"c{i}" for i in range(11)),
            base_hash=state_hash(base),
        )
        shifted = {k: v + 0.01 for k, v in base.items()}
        experts.append(
            save_checkpoint(tmp_path / f"{task}.safetensors", meta, shifted, {task: head.state_dict()})
        )
    inputs, loaded = load_inputs(tmp_path / "base.pth", list(experts))
    assert loaded[0].meta.extra["import"]["format"] == "dinov2"
    assert set(inputs.tasks) == {"seg", "depth", "normal"}
    torch.testing.assert_close(inputs.base_state["blocks.0.norm1.weight"], base["blocks.0.norm1.weight"])


def test_load_meta_reads_headers_and_imports_a_foreign_file_once_per_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from simokit.models.importers import load_meta, lookup

    encoder = build_encoder("vitnano14", embed_dim=64, num_heads=1).state_dict()
    torch.save(encoder, tmp_path / "base.pth")
    calls: list[str] = []
    real = lookup.import_model
    monkeypatch.setattr(lookup, "import_model", lambda p, *a: calls.append(str(p)) or real(p, *a))
    first = load_meta(tmp_path / "base.pth")
    assert first.kind == "base" and first.encoder["embed_dim"] == 64
    assert load_meta(tmp_path / "base.pth") == first and len(calls) == 1  # the same file: not again
    torch.save({k: v + 1 for k, v in encoder.items()}, tmp_path / "base.pth")
    load_meta(tmp_path / "base.pth")
    assert len(calls) == 2  # changed on disk: imported again
    saved = save_imported(import_model(tmp_path / "base.pth"), tmp_path / "base.safetensors")
    assert load_meta(saved) == load_checkpoint(saved).meta and len(calls) == 2  # header only
    with pytest.raises(CheckpointError, match="does not exist"):
        load_meta(tmp_path / "nothing.pth")

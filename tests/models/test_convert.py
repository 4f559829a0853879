"""Weight conversion: Hugging Face Dinov2 equality, format detection and checkpoint file handling.

Interpolation note: transformers' Dinov2Model resamples position embeddings straight to the target
grid, while the official dinov2 models without registers use a scale factor of (n + 0.1) / M (the
"interpolate_offset"), which samples a slightly different grid. A converted Hugging Face config follows
transformers (offset 0), so it matches transformers at every size; with the official offset it does not.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from simokit.errors import CheckpointError, ConfigError
from simokit.models import (
    DinoVisionTransformer,
    VitConfig,
    convert_hf_dinov2,
    detect_format,
    load_encoder_weights,
    to_official,
    vit_config_from_hf,
)

NANO = VitConfig(embed_dim=48, depth=2, num_heads=2, img_size=56)


def _hf_model(registers: bool, swiglu: bool, seed: int = 0) -> Any:
    """A small randomly initialised Hugging Face DINOv2 with non-trivial LayerScale and biases."""
    transformers = pytest.importorskip("transformers", reason="transformers is needed for the HF comparison")
    torch.manual_seed(seed)
    kwargs = dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=56, patch_size=14,
        use_swiglu_ffn=swiglu, layerscale_value=0.5,
    )  # fmt: skip
    if registers:
        model = transformers.Dinov2WithRegistersModel(
            transformers.Dinov2WithRegistersConfig(num_register_tokens=4, **kwargs)
        )
    else:
        model = transformers.Dinov2Model(transformers.Dinov2Config(**kwargs))
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.add_(0.1 * torch.randn_like(param))
            if name.endswith("lambda1"):
                param.uniform_(0.2, 1.5)
    return model.eval()


def _ours_from_hf(hf: Any, **overrides: Any) -> DinoVisionTransformer:
    cfg = dataclasses.replace(vit_config_from_hf(hf.config.to_dict()), **overrides)
    model = DinoVisionTransformer(cfg)
    model.load_state_dict(convert_hf_dinov2(hf.state_dict()), strict=True)
    return model.eval()


def _compare(
    hf: Any, ours: DinoVisionTransformer, x: torch.Tensor, masks: torch.Tensor | None = None
) -> float:
    with torch.no_grad():
        ref = hf(pixel_values=x, bool_masked_pos=masks)
        out = ours.forward_features(x, masks=masks)
        normed = ours.norm(out["x_prenorm"])
    torch.testing.assert_close(out["x_norm_clstoken"], ref.pooler_output, rtol=0, atol=1e-5)
    return (normed - ref.last_hidden_state).abs().max().item()


@pytest.mark.parametrize("swiglu", [False, True])
@pytest.mark.parametrize("registers", [False, True])
def test_matches_hugging_face_at_native_size(registers: bool, swiglu: bool) -> None:
    hf = _hf_model(registers, swiglu)
    ours = _ours_from_hf(hf)
    assert ours.config.ffn == ("swiglu" if swiglu else "mlp")
    assert ours.num_register_tokens == (4 if registers else 0)
    x = torch.randn(2, 3, 56, 56)
    assert _compare(hf, ours, x) <= 1e-5
    masks = torch.rand(2, 16) > 0.5
    assert _compare(hf, ours, x, masks) <= 1e-5


@pytest.mark.parametrize("swiglu", [False, True])
def test_register_model_matches_hugging_face_interpolation(swiglu: bool) -> None:
    hf = _hf_model(registers=True, swiglu=swiglu)
    ours = _ours_from_hf(hf)
    for size in ((84, 84), (56, 98), (70, 42)):
        assert _compare(hf, ours, torch.randn(2, 3, *size)) <= 1e-5


def test_plain_model_interpolation_differs_from_hf_only_by_the_offset() -> None:
    hf = _hf_model(registers=False, swiglu=False)
    hf_like = _ours_from_hf(hf)
    assert hf_like.config.interpolate_offset == 0.0 and not hf_like.config.interpolate_antialias
    official = _ours_from_hf(hf, interpolate_offset=0.1)
    for size in ((84, 84), (56, 98), (70, 42)):
        x = torch.randn(2, 3, *size)
        assert _compare(hf, hf_like, x) <= 1e-5
        assert _compare_loose(hf, official, x) > 1e-5


def _compare_loose(hf: Any, ours: DinoVisionTransformer, x: torch.Tensor) -> float:
    with torch.no_grad():
        normed = ours.norm(ours.forward_features(x)["x_prenorm"])
        return (normed - hf(pixel_values=x).last_hidden_state).abs().max().item()


@pytest.mark.parametrize("registers", [False, True])
def test_hugging_face_folder_loads_through_load_encoder_weights(tmp_path: Path, registers: bool) -> None:
    hf = _hf_model(registers, swiglu=True)
    hf.save_pretrained(tmp_path)
    cfg, sd = load_encoder_weights(tmp_path)
    assert cfg == vit_config_from_hf(hf.config.to_dict())
    # the file on disk uses the hub names (query/key/value, weights_in); memory uses the new ones
    assert sd.keys() == convert_hf_dinov2(hf.state_dict()).keys()
    for key, value in convert_hf_dinov2(hf.state_dict()).items():
        torch.testing.assert_close(sd[key], value, rtol=0, atol=0)
    assert cfg is not None
    model = DinoVisionTransformer(cfg)
    model.load_state_dict(sd, strict=True)
    assert _compare(hf, model.eval(), torch.randn(1, 3, 56, 56)) <= 1e-5


def _hub_style(sd: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {prefix + k: v for k, v in sd.items()}


def test_detect_format_and_prefix_tolerance() -> None:
    official = DinoVisionTransformer(NANO).state_dict()
    assert detect_format(official) == "official"
    assert to_official(official).keys() == official.keys()
    hf_sd = {
        "embeddings.cls_token": official["cls_token"],
        "embeddings.mask_token": official["mask_token"],
        "embeddings.position_embeddings": official["pos_embed"],
        "embeddings.patch_embeddings.projection.weight": official["patch_embed.proj.weight"],
        "embeddings.patch_embeddings.projection.bias": official["patch_embed.proj.bias"],
        "layernorm.weight": official["norm.weight"],
        "layernorm.bias": official["norm.bias"],
    }
    for i in range(NANO.depth):
        q, k, v = official[f"blocks.{i}.attn.qkv.weight"].chunk(3)
        qb, kb, vb = official[f"blocks.{i}.attn.qkv.bias"].chunk(3)
        prefix = f"encoder.layer.{i}."
        hf_sd |= {
            prefix + "attention.attention.query.weight": q, prefix + "attention.attention.query.bias": qb,
            prefix + "attention.attention.key.weight": k, prefix + "attention.attention.key.bias": kb,
            prefix + "attention.attention.value.weight": v, prefix + "attention.attention.value.bias": vb,
        }  # fmt: skip
        for ours, theirs in (
            ("attn.proj", "attention.output.dense"), ("norm1", "norm1"), ("norm2", "norm2"),
            ("mlp.fc1", "mlp.fc1"), ("mlp.fc2", "mlp.fc2"),
        ):  # fmt: skip
            for leaf in ("weight", "bias"):
                hf_sd[f"{prefix}{theirs}.{leaf}"] = official[f"blocks.{i}.{ours}.{leaf}"]
        hf_sd[prefix + "layer_scale1.lambda1"] = official[f"blocks.{i}.ls1.gamma"]
        hf_sd[prefix + "layer_scale2.lambda1"] = official[f"blocks.{i}.ls2.gamma"]
    assert detect_format(hf_sd) == "hf"
    wrapped = _hub_style(hf_sd, "dinov2.") | {"classifier.weight": torch.zeros(3, 96)}
    for source in (hf_sd, wrapped):
        converted = to_official(source)
        assert converted.keys() == official.keys()
        for key, value in official.items():
            torch.testing.assert_close(converted[key], value, rtol=0, atol=0)
    with pytest.raises(CheckpointError, match="does not know"):
        convert_hf_dinov2(hf_sd | {"encoder.layer.0.adapter.weight": torch.zeros(1)})
    incomplete = {k: v for k, v in hf_sd.items() if "attention.attention.key" not in k}
    with pytest.raises(CheckpointError, match="incomplete"):
        convert_hf_dinov2(incomplete)
    with pytest.raises(CheckpointError, match="neither"):
        detect_format({"fc.weight": torch.zeros(1)})


def test_vit_config_from_hf_fields() -> None:
    cfg = vit_config_from_hf({
        "model_type": "dinov2", "hidden_size": 1536, "num_hidden_layers": 40, "num_attention_heads": 24,
        "image_size": 518, "patch_size": 14, "use_swiglu_ffn": True, "layerscale_value": 1.0,
    })  # fmt: skip
    assert (cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.ffn) == (1536, 40, 24, "swiglu")
    assert cfg.interpolate_offset == 0.0 and cfg.num_register_tokens == 0
    with pytest.raises(ConfigError, match="model_type"):
        vit_config_from_hf({"model_type": "vit", "hidden_size": 8})
    with pytest.raises(ConfigError, match="num_hidden_layers"):
        vit_config_from_hf({"model_type": "dinov2", "hidden_size": 8})


def test_load_encoder_weights_pth_and_safetensors(tmp_path: Path) -> None:
    model = DinoVisionTransformer(NANO)
    sd = model.state_dict()
    torch.save(sd, tmp_path / "plain.pth")
    torch.save({"state_dict": sd, "vit_config": NANO.to_dict()}, tmp_path / "wrapped.pth")
    save_file(
        {k: v.contiguous() for k, v in sd.items()},
        str(tmp_path / "enc.safetensors"),
        metadata={"vit_config": json.dumps(NANO.to_dict())},
    )
    cfg, loaded = load_encoder_weights(tmp_path / "plain.pth")
    assert cfg is None and loaded.keys() == sd.keys()
    for name in ("wrapped.pth", "enc.safetensors"):
        cfg, loaded = load_encoder_weights(tmp_path / name)
        assert cfg == NANO
        fresh = DinoVisionTransformer(NANO)
        fresh.load_state_dict(loaded, strict=True)
        for key, value in sd.items():
            torch.testing.assert_close(fresh.state_dict()[key], value, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["broken.pth", "broken.safetensors"])
def test_corrupt_or_missing_checkpoint_raises_checkpoint_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"this is not a checkpoint at all" * 7)
    with pytest.raises(CheckpointError, match=name):
        load_encoder_weights(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_encoder_weights(tmp_path / "missing.pth")
    (tmp_path / "weights.npz").write_bytes(b"")
    with pytest.raises(CheckpointError, match="extension"):
        load_encoder_weights(tmp_path / "weights.npz")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="no state dict"):
        load_encoder_weights(tmp_path / "list.pth")

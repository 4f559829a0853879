"""DINOv2-compatible ViT: official key layout, state-dict round trip, shapes, interpolation and errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny_models import randomized_encoder

from simokit.errors import ConfigError, ShapeError
from simokit.models import VARIANTS, DinoVisionTransformer, VitConfig, build_encoder, interpolate_pos_embed
from simokit.models.vit import vitg14, vits14, vits14_reg

NANO = VitConfig(embed_dim=48, depth=2, num_heads=2, img_size=56)


def _official_vits14_keys(depth: int = 12) -> set[str]:
    """The key list of the official dinov2_vits14 hub checkpoint (flat blocks, MLP, LayerScale)."""
    keys = {"cls_token", "pos_embed", "mask_token", "patch_embed.proj.weight", "patch_embed.proj.bias"}
    keys |= {"norm.weight", "norm.bias"}
    per_block = [
        "norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight",
        "attn.proj.bias", "ls1.gamma", "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias",
        "mlp.fc2.weight", "mlp.fc2.bias", "ls2.gamma",
    ]  # fmt: skip
    keys |= {f"blocks.{i}.{name}" for i in range(depth) for name in per_block}
    return keys


def test_vits14_state_dict_matches_official_keys_and_shapes() -> None:
    with torch.device("meta"):
        model = vits14()
    sd = model.state_dict()
    assert set(sd) == _official_vits14_keys()
    assert sd["pos_embed"].shape == (1, 37 * 37 + 1, 384)
    assert sd["cls_token"].shape == (1, 1, 384)
    assert sd["mask_token"].shape == (1, 384)
    assert sd["patch_embed.proj.weight"].shape == (384, 3, 14, 14)
    assert sd["blocks.0.attn.qkv.weight"].shape == (3 * 384, 384)
    assert sd["blocks.0.mlp.fc1.weight"].shape == (4 * 384, 384)


def test_register_and_giant_variants_have_official_extra_keys() -> None:
    with torch.device("meta"):
        reg = vits14_reg()
        giant = vitg14()
    assert set(reg.state_dict()) == _official_vits14_keys() | {"register_tokens"}
    assert reg.register_tokens is not None and reg.register_tokens.shape == (1, 4, 384)
    sd = giant.state_dict()
    assert len([k for k in sd if k.endswith(".attn.qkv.weight")]) == 40
    assert sd["blocks.39.mlp.w12.weight"].shape == (2 * 4096, 1536)
    assert sd["blocks.39.mlp.w3.weight"].shape == (1536, 4096)
    assert not any(".mlp.fc1." in k for k in sd)


def test_state_dict_round_trip_through_torch_save(tmp_path: Path) -> None:
    model = randomized_encoder(NANO)
    path = tmp_path / "encoder.pth"
    torch.save(model.state_dict(), path)
    fresh = DinoVisionTransformer(NANO).eval()
    fresh.load_state_dict(torch.load(path, weights_only=True), strict=True)
    x = torch.randn(2, 3, 56, 70)
    with torch.no_grad():
        assert torch.equal(model(x), fresh(x))
        a, b = model.forward_features(x), fresh.forward_features(x)
    assert torch.equal(a["x_prenorm"], b["x_prenorm"])


@pytest.mark.parametrize("registers", [0, 4])
def test_forward_features_shapes(registers: int) -> None:
    model = randomized_encoder(
        VitConfig(embed_dim=48, depth=2, num_heads=2, img_size=56, num_register_tokens=registers)
    )
    x = torch.randn(2, 3, 42, 70)
    with torch.no_grad():
        out = model.forward_features(x)
        cls = model(x)
    assert set(out) == {"x_norm_clstoken", "x_norm_regtokens", "x_norm_patchtokens", "x_prenorm", "masks"}
    assert out["x_norm_clstoken"].shape == (2, 48)
    assert out["x_norm_regtokens"].shape == (2, registers, 48)
    assert out["x_norm_patchtokens"].shape == (2, 3 * 5, 48)
    assert out["x_prenorm"].shape == (2, 1 + registers + 15, 48)
    assert out["masks"] is None
    torch.testing.assert_close(cls, out["x_norm_clstoken"], rtol=0, atol=0)
    torch.testing.assert_close(
        model.norm(out["x_prenorm"]),
        torch.cat(
            [out["x_norm_clstoken"][:, None], out["x_norm_regtokens"], out["x_norm_patchtokens"]], dim=1
        ),
    )


def test_masks_replace_patch_embeddings_with_mask_token() -> None:
    model = randomized_encoder(NANO)
    masks = torch.ones(2, 16, dtype=torch.bool)
    with torch.no_grad():
        a = model.forward_features(torch.randn(2, 3, 56, 56), masks=masks)
        b = model.forward_features(torch.randn(2, 3, 56, 56), masks=masks)
        partial = masks.clone()
        partial[:, ::2] = False
        c = model.forward_features(torch.zeros(2, 3, 56, 56), masks=partial)["x_prenorm"]
    # every patch masked: the image content no longer matters
    torch.testing.assert_close(a["x_prenorm"], b["x_prenorm"], rtol=0, atol=0)
    assert a["masks"] is masks and torch.isfinite(c).all()
    with pytest.raises(ShapeError, match="masks"):
        model.forward_features(torch.randn(2, 3, 56, 56), masks=torch.ones(2, 15, dtype=torch.bool))


def test_get_intermediate_layers_selection_order_and_reshape() -> None:
    model = randomized_encoder(
        VitConfig(embed_dim=48, depth=3, num_heads=2, img_size=56, num_register_tokens=4)
    )
    x = torch.randn(2, 3, 56, 84)
    with torch.no_grad():
        last = model.get_intermediate_layers(x)
        full = model.forward_features(x)
        by_index = model.get_intermediate_layers(x, n=(2, 0, -3), reshape=True, return_class_token=True)
        last_two = model.get_intermediate_layers(x, n=2, norm=False)
    assert len(last) == 1 and last[0].shape == (2, 24, 48)
    torch.testing.assert_close(last[0], full["x_norm_patchtokens"], rtol=0, atol=0)
    assert [p.shape for p, _ in by_index] == [(2, 48, 4, 6)] * 3
    assert [c.shape for _, c in by_index] == [(2, 48)] * 3
    # outputs follow the order of n; -3 is block 0 of 3
    torch.testing.assert_close(by_index[1][0], by_index[2][0], rtol=0, atol=0)
    patch_grid = full["x_norm_patchtokens"].reshape(2, 4, 6, 48).permute(0, 3, 1, 2)
    torch.testing.assert_close(by_index[0][0], patch_grid, rtol=0, atol=0)
    torch.testing.assert_close(by_index[0][1], full["x_norm_clstoken"], rtol=0, atol=0)
    assert len(last_two) == 2
    torch.testing.assert_close(last_two[1], full["x_prenorm"][:, 5:], rtol=0, atol=0)
    for bad in (0, 4, (3,), (-4,), ()):
        with pytest.raises(ConfigError):
            model.get_intermediate_layers(x, n=bad)


@pytest.mark.parametrize(("height", "width"), [(224, 224), (518, 518), (224, 308), (56, 84)])
def test_position_interpolation_gives_right_token_counts(height: int, width: int) -> None:
    model = randomized_encoder(NANO)
    with torch.no_grad():
        out = model.forward_features(torch.randn(1, 3, height, width))
    assert out["x_norm_patchtokens"].shape == (1, (height // 14) * (width // 14), 48)
    assert torch.isfinite(out["x_prenorm"]).all()


@pytest.mark.parametrize(("offset", "antialias"), [(0.1, False), (0.0, True), (0.0, False)])
def test_interpolation_to_native_size_is_identity(offset: float, antialias: bool) -> None:
    pos = torch.randn(1, 1 + 16, 8)
    assert interpolate_pos_embed(pos, 4, 4, offset=offset, antialias=antialias) is pos
    # a non-square grid with one native side is still resampled, and keeps the CLS position
    out = interpolate_pos_embed(pos, 4, 6, offset=offset, antialias=antialias)
    assert out.shape == (1, 1 + 24, 8)
    torch.testing.assert_close(out[:, 0], pos[:, 0], rtol=0, atol=0)


def test_offset_changes_the_sampling_grid_only_slightly() -> None:
    pos = torch.randn(1, 1 + 16, 8)
    legacy = interpolate_pos_embed(pos, 7, 5, offset=0.1, antialias=False)
    plain = interpolate_pos_embed(pos, 7, 5, offset=0.0, antialias=False)
    diff = (legacy - plain).abs().max().item()
    assert 0 < diff < 0.5


def test_patch_size_mismatch_raises_shape_error_with_nearest_sizes() -> None:
    model = build_encoder("vitnano14")
    with pytest.raises(ShapeError, match=r"height 225 .*224 or 238"):
        model(torch.randn(1, 3, 225, 224))
    with pytest.raises(ShapeError, match="width 10"):
        model(torch.randn(1, 3, 224, 10))
    with pytest.raises(ShapeError, match="channels"):
        model(torch.randn(1, 1, 56, 56))
    with pytest.raises(ShapeError):
        model(torch.randn(3, 56, 56))


def test_unknown_variant_and_option_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="vits14"):
        build_encoder("vit_huge")
    with pytest.raises(ConfigError, match="embed_size"):
        build_encoder("vitnano14", embed_size=32)
    with pytest.raises(ConfigError, match="num_heads"):
        VitConfig(embed_dim=50, depth=1, num_heads=3)
    with pytest.raises(ConfigError, match="ffn"):
        VitConfig(embed_dim=48, depth=1, num_heads=2, ffn="geglu")


def test_variants_and_config_json_round_trip() -> None:
    assert {"vits14", "vitb14", "vitl14", "vitg14", "vitmicro14", "vitnano14"} <= set(VARIANTS)
    assert {f"{n}_reg" for n in ("vits14", "vitb14", "vitl14", "vitg14")} <= set(VARIANTS)
    assert (VARIANTS["vitl14"].embed_dim, VARIANTS["vitl14"].depth, VARIANTS["vitl14"].num_heads) == (
        1024,
        24,
        16,
    )
    assert VARIANTS["vitb14_reg"].num_register_tokens == 4 and VARIANTS["vitb14_reg"].interpolate_antialias
    assert VitConfig(embed_dim=48, depth=1, num_heads=2, ffn="swiglufused").ffn == "swiglu"
    for cfg in VARIANTS.values():
        assert VitConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ConfigError, match="unknown"):
        VitConfig.from_dict({**NANO.to_dict(), "drop_path": 0.1})
    model = build_encoder("vitmicro14", img_size=56)
    assert model.pos_embed.shape == (1, 17, 192) and model.depth == 6

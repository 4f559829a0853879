"""timm DINOv2 ViTs: a timm-layout state dict imports to an encoder equal to the official one.

timm is not installed, so the timm layout is built from an official state dict by timm's own load-time
conversion (derived from its code): mask_token dropped; for register models `reg_token` = the
registers, `cls_token` = CLS + its position, `pos_embed` = patch positions only; packed SwiGLU
w12 -> fc1, w3 -> fc2. The token preparation timm runs on that layout (no_embed_class: add positions to
the patches, then prepend CLS and registers; else prepend, then add) is written out independently below.
"""

from __future__ import annotations

import torch
from safetensors.torch import save_file
from tiny_models import randomized_encoder
from torch import Tensor

from simokit.models import DinoVisionTransformer, VitConfig, build_encoder
from simokit.models.importers import detect, import_model, read_source

PLAIN = VitConfig(embed_dim=128, depth=2, num_heads=2, img_size=56, init_values=0.5)
REG_SWIGLU = VitConfig(
    embed_dim=128, depth=2, num_heads=2, img_size=56, init_values=0.5, ffn="swiglu",
    num_register_tokens=4, interpolate_antialias=True, interpolate_offset=0.0,
)  # fmt: skip


def _to_timm(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """timm's load-time conversion of an official DINOv2 state dict."""
    state = dict(state)
    state.pop("mask_token", None)
    out: dict[str, Tensor] = {}
    if "register_tokens" in state:
        out["reg_token"] = state.pop("register_tokens")
        out["cls_token"] = state.pop("cls_token") + state["pos_embed"][:, 0]
        out["pos_embed"] = state.pop("pos_embed")[:, 1:]
    for key, value in state.items():
        out[key.replace(".mlp.w12.", ".mlp.fc1.").replace(".mlp.w3.", ".mlp.fc2.")] = value
    return out


def _timm_tokens(timm: dict[str, Tensor], x: Tensor, patch: DinoVisionTransformer) -> Tensor:
    """timm's token preparation at the native grid: (B, 3, H, W) -> (B, 1 + R + N, D)."""
    patches = patch.patch_embed(x)
    prefix = [timm["cls_token"].expand(x.shape[0], -1, -1)]
    if "reg_token" in timm:
        prefix.append(timm["reg_token"].expand(x.shape[0], -1, -1))
    if timm["pos_embed"].shape[1] == patches.shape[1]:  # no_embed_class
        return torch.cat([*prefix, patches + timm["pos_embed"]], dim=1)
    return torch.cat([*prefix, patches], dim=1) + timm["pos_embed"]


def _check(cfg: VitConfig, tmp_path) -> None:  # type: ignore[no-untyped-def]
    original = randomized_encoder(cfg, noise=0.05)
    timm = _to_timm(original.state_dict())
    path = tmp_path / "timm.safetensors"
    save_file({k: v.contiguous() for k, v in timm.items()}, str(path))
    assert detect(read_source(path)).name == "timm"
    model = import_model(path)
    assert not model.is_expert
    for field in ("embed_dim", "depth", "num_heads", "ffn", "num_register_tokens", "interpolate_offset"):
        assert getattr(model.vit, field) == getattr(cfg, field), field
    ours = build_encoder(model.vit)
    ours.load_state_dict(model.encoder, strict=True)
    ours.eval()
    with torch.no_grad():
        x = torch.randn(2, 3, 56, 56)
        torch.testing.assert_close(ours.prepare_tokens(x), _timm_tokens(timm, x, original), rtol=0, atol=1e-6)
        for size in ((56, 56), (70, 84)):
            x = torch.randn(2, 3, *size)
            ref, out = original.forward_features(x), ours.forward_features(x)
            for key in ("x_norm_clstoken", "x_norm_patchtokens", "x_prenorm"):
                torch.testing.assert_close(out[key], ref[key], rtol=0, atol=1e-5)  # type: ignore[literal-required]


def test_plain_mlp_model_with_cls_position(tmp_path) -> None:  # type: ignore[no-untyped-def]
    _check(PLAIN, tmp_path)


def test_register_swiglu_model_with_folded_cls_position(tmp_path) -> None:  # type: ignore[no-untyped-def]
    _check(REG_SWIGLU, tmp_path)


def test_register_positions_fold_into_the_registers(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A timm layout whose position table also covers CLS and registers imports to the same tokens."""
    original = randomized_encoder(REG_SWIGLU, noise=0.05)
    state = original.state_dict()
    reg_pos = 0.1 * torch.randn(1, 4, 128)
    timm = {k: v for k, v in _to_timm(state).items() if k not in ("cls_token", "pos_embed", "reg_token")}
    timm["cls_token"], timm["reg_token"] = state["cls_token"], state["register_tokens"] - reg_pos
    timm["pos_embed"] = torch.cat((state["pos_embed"][:, :1], reg_pos, state["pos_embed"][:, 1:]), dim=1)
    path = tmp_path / "timm.safetensors"
    save_file({k: v.contiguous() for k, v in timm.items()}, str(path))
    model = import_model(path, fmt="timm")
    ours = build_encoder(model.vit)
    ours.load_state_dict(model.encoder, strict=True)
    x = torch.randn(1, 3, 56, 56)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval().forward_features(x)["x_prenorm"],
                                   original.forward_features(x)["x_prenorm"], rtol=0, atol=1e-5)  # fmt: skip

"""MultiTaskModel: one encoder pass shared by all heads, per-task outputs and layer routing."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from simokit.errors import ConfigError
from simokit.models import DinoVisionTransformer, HeadConfig, MultiTaskModel, VitConfig, build_head

CFG = VitConfig(embed_dim=32, depth=3, num_heads=2, img_size=56)


def _model() -> MultiTaskModel:
    torch.manual_seed(0)
    encoder = DinoVisionTransformer(CFG)
    heads = {
        "seg": build_head(HeadConfig(kind="linear", out_channels=5, layers=(-1,), batch_norm=True), 32),
        "depth": build_head(
            HeadConfig(
                kind="dpt", out_channels=1, activation="softplus", layers=(0, 1, -2, -1), dpt_features=8
            ),
            32,
        ),
        "normal": build_head(
            HeadConfig(kind="linear", out_channels=3, activation="normalize", layers=(2, 0), use_cls=True), 32
        ),
    }
    return MultiTaskModel(encoder, heads).eval()


def test_encoder_runs_once_and_outputs_have_task_shapes(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model()
    calls: list[Any] = []
    original = model.encoder.block_sites

    def counting(x: Any, sites: Any) -> Any:
        calls.append(sites)
        return original(x, sites)

    monkeypatch.setattr(model.encoder, "block_sites", counting)
    with torch.no_grad():
        out = model(torch.randn(2, 3, 56, 84))
    assert len(calls) == 1 and calls[0] == [(0, True), (1, True), (2, True)]
    assert set(out) == {"seg", "depth", "normal"}
    assert out["seg"].shape == (2, 5, 56, 84)
    assert out["depth"].shape == (2, 1, 56, 84) and (out["depth"] > 0).all()
    assert out["normal"].shape == (2, 3, 56, 84)


def test_heads_get_their_layers_in_their_order() -> None:
    model = _model()
    x = torch.randn(1, 3, 42, 56)
    with torch.no_grad():
        out = model(x)
        feats = model.features(x)
        direct = model.encoder.get_intermediate_layers(x, n=(2, 0), reshape=True, return_class_token=True)
        expected = model.heads["normal"](list(direct), (42, 56))
    assert sorted(feats) == [(0, True), (1, True), (2, True)]
    assert feats[(0, True)][0].shape == (1, 32, 3, 4) and feats[(0, True)][1].shape == (1, 32)
    torch.testing.assert_close(out["normal"], expected, rtol=0, atol=0)
    assert model.head_layers("depth") == [0, 1, 1, 2]


def test_heads_reading_blocks_before_the_final_norm_get_raw_features() -> None:
    encoder = DinoVisionTransformer(CFG).eval()
    with torch.no_grad():
        encoder.norm.weight.uniform_(0.5, 2.0)  # a non-trivial final norm, so raw and normed differ
    raw = HeadConfig(kind="linear", out_channels=1, layers=(1, 2), use_cls=True, norm=False)
    normed = HeadConfig(kind="linear", out_channels=2, layers=(2,))
    model = MultiTaskModel(encoder, {"depth": build_head(raw, 32), "seg": build_head(normed, 32)}).eval()
    x = torch.randn(2, 3, 42, 56)
    with torch.no_grad():
        out = model(x)
        plain = encoder.get_intermediate_layers(
            x, n=(1, 2), reshape=True, return_class_token=True, norm=False
        )
        final = encoder.get_intermediate_layers(x, n=(2,), reshape=True, return_class_token=True)
        expected_depth = model.heads["depth"](list(plain), (42, 56))
        expected_seg = model.heads["seg"](list(final), (42, 56))
    assert model.required_sites() == [(1, False), (2, False), (2, True)]
    torch.testing.assert_close(out["depth"], expected_depth, rtol=0, atol=0)
    torch.testing.assert_close(out["seg"], expected_seg, rtol=0, atol=0)
    assert not torch.allclose(plain[1][0], final[0][0])


def test_consumers_use_non_negative_layers_and_bad_heads_are_refused() -> None:
    model = _model()
    consumers = model.consumers()
    assert [c.layer for c in consumers["seg"]] == [2]
    assert [(c.layer, c.part) for c in consumers["normal"]] == [
        (2, "patch"),
        (2, "cls"),
        (0, "patch"),
        (0, "cls"),
    ]
    encoder = DinoVisionTransformer(CFG)
    with pytest.raises(ConfigError, match="embed_dim=32"):
        MultiTaskModel(encoder, {"seg": build_head(HeadConfig(kind="linear", out_channels=2), 48)})
    with pytest.raises(ConfigError, match="out of range"):
        MultiTaskModel(
            encoder, {"seg": build_head(HeadConfig(kind="linear", out_channels=2, layers=(5,)), 32)}
        )
    with pytest.raises(ConfigError, match="build_head"):
        MultiTaskModel(encoder, {"seg": torch.nn.Conv2d(32, 2, 1)})
    with pytest.raises(ConfigError, match="at least one head"):
        MultiTaskModel(encoder, {})

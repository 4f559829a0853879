"""Compressed task vectors: low-rank and sparse deltas equal their formulas; bad settings are named."""

from __future__ import annotations

import pytest
import torch

from simokit.errors import ConfigError
from simokit.routing.compress import as_matrix, compress_delta


def _states(seed: int = 0) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    base = {
        "blocks.0.attn.qkv.weight": torch.randn(24, 8, generator=g),
        "blocks.0.attn.qkv.bias": torch.randn(24, generator=g),
        "patch_embed.proj.weight": torch.randn(8, 3, 2, 2, generator=g),
        "pos_embed": torch.randn(1, 5, 8, generator=g),
        "cls_token": torch.randn(1, 1, 8, generator=g),
        "steps": torch.tensor([3]),  # integer buffers are never merged nor compressed
    }
    merged = {
        k: v + 0.1 * torch.randn(v.shape, generator=g) if v.is_floating_point() else v
        for k, v in base.items()
    }
    return base, merged


def test_lowrank_keeps_the_top_singular_directions_and_exact_vectors() -> None:
    base, merged = _states()
    out, stats = compress_delta(base, merged, "lowrank", rank=2)
    delta = merged["blocks.0.attn.qkv.weight"] - base["blocks.0.attn.qkv.weight"]
    u, s, vh = torch.linalg.svd(delta.double(), full_matrices=False)
    want = base["blocks.0.attn.qkv.weight"] + ((u[:, :2] * s[:2]) @ vh[:2]).float()
    torch.testing.assert_close(out["blocks.0.attn.qkv.weight"], want, rtol=0, atol=1e-6)
    conv = as_matrix(out["patch_embed.proj.weight"] - base["patch_embed.proj.weight"])
    assert conv is not None and conv.shape == (8, 12) and torch.linalg.matrix_rank(conv) == 2
    pos = as_matrix(out["pos_embed"] - base["pos_embed"])
    assert pos is not None and pos.shape == (5, 8) and torch.linalg.matrix_rank(pos) == 2
    for key in ("blocks.0.attn.qkv.bias", "cls_token"):  # vectors: stored exactly
        torch.testing.assert_close(out[key], merged[key], rtol=0, atol=0)
    assert torch.equal(out["steps"], base["steps"])
    # stored numbers: rank·(rows + cols) per matrix, vectors in full
    assert stats.stored == 2 * (24 + 8) + 2 * (8 + 12) + 2 * (5 + 8) + 24 + 8
    assert stats.params == sum(v.numel() for v in base.values() if v.is_floating_point())
    assert 0.0 < stats.energy < 1.0 and stats.per_tensor["blocks.0.attn.qkv.weight"] == 2


def test_lowrank_at_full_rank_and_none_reproduce_the_merge() -> None:
    base, merged = _states(1)
    out, stats = compress_delta(base, merged, "lowrank", rank=8)
    for k, v in merged.items():
        torch.testing.assert_close(out[k], v, rtol=0, atol=1e-5)
    assert stats.energy == pytest.approx(1.0, abs=1e-6)
    same, stats = compress_delta(base, merged, "none")
    assert all(same[k] is merged[k] for k in merged) and stats.ratio == 1.0


def test_sparse_keeps_exactly_the_largest_fraction_of_the_whole_delta() -> None:
    base, merged = _states(2)
    out, stats = compress_delta(base, merged, "sparse", density=0.25)
    keys = [k for k, v in base.items() if v.is_floating_point()]
    delta = torch.cat([(merged[k] - base[k]).reshape(-1) for k in keys])
    kept = torch.cat([(out[k] - base[k]).reshape(-1) for k in keys])
    n_keep = int(delta.numel() * 0.25)
    assert int((kept != 0).sum()) == n_keep == stats.stored
    top = delta.abs().topk(n_keep).indices
    torch.testing.assert_close(kept[top], delta[top], rtol=0, atol=1e-6)
    assert stats.energy == pytest.approx(float(kept.pow(2).sum() / delta.pow(2).sum()), rel=1e-5)


@pytest.mark.parametrize(
    ("kind", "kwargs", "words"),
    [("svd", {}, "unknown"), ("lowrank", {"rank": 0}, "rank >= 1"), ("sparse", {"density": 0.0}, "density")],
)
def test_bad_settings_are_named(kind: str, kwargs: dict[str, float], words: str) -> None:
    base, merged = _states()
    with pytest.raises(ConfigError, match=words):
        compress_delta(base, merged, kind, **kwargs)  # type: ignore[arg-type]


def test_mismatched_tensors_are_named() -> None:
    base, merged = _states()
    merged.pop("cls_token")
    with pytest.raises(ConfigError, match="cls_token"):
        compress_delta(base, merged, "lowrank")

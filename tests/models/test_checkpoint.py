"""simokit checkpoints: round trip, atomic writes, and refusal of corrupt or mismatched files."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from simokit.errors import CheckpointError
from simokit.models.checkpoint import (
    Checkpoint,
    CheckpointMeta,
    check_compatible,
    load_checkpoint,
    save_checkpoint,
    state_hash,
)


def _encoder(seed: int, dim: int = 4) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "blocks.0.attn.qkv.weight": torch.randn(3 * dim, dim, generator=g),
        "norm.weight": torch.ones(dim),
    }


def _expert(
    tmp_path: Path,
    name: str,
    base_hash: str,
    encoder: dict[str, torch.Tensor],
    arch: dict[str, float | None] | None = None,
) -> Path:
    meta = CheckpointMeta(
        kind="expert",
        encoder=arch or {"embed_dim": 4, "depth": 1},
        heads={"seg": {"kind": "linear"}},
        classes=("a", "b"),
        base_hash=base_hash,
    )
    head = {"conv.weight": torch.randn(2, 4, 1, 1), "conv.bias": torch.zeros(2)}
    return save_checkpoint(tmp_path / f"{name}.safetensors", meta, encoder, {"seg": head})


def test_round_trip_keeps_tensors_and_metadata(tmp_path: Path) -> None:
    enc = _encoder(0)
    path = _expert(tmp_path, "seg", "abc", enc)
    ck = load_checkpoint(path)
    assert ck.meta.kind == "expert" and ck.meta.tasks == ("seg",) and ck.meta.classes == ("a", "b")
    assert ck.meta.base_hash == "abc"
    for k, v in enc.items():
        torch.testing.assert_close(ck.encoder[k], v, rtol=0, atol=0)
    assert set(ck.heads["seg"]) == {"conv.weight", "conv.bias"}
    assert [p.name for p in tmp_path.iterdir()] == ["seg.safetensors"]  # no temp file left behind


def test_merged_checkpoint_holds_several_heads(tmp_path: Path) -> None:
    meta = CheckpointMeta(kind="merged", encoder={"d": 1}, heads={"seg": {}, "depth": {}})
    heads = {"seg": {"w": torch.ones(1)}, "depth": {"w": torch.zeros(1)}}
    ck = load_checkpoint(save_checkpoint(tmp_path / "m.safetensors", meta, _encoder(1), heads))
    assert ck.heads["depth"]["w"].item() == 0.0 and ck.heads["seg"]["w"].item() == 1.0


def test_state_hash_depends_on_values_not_order() -> None:
    a = _encoder(0)
    assert state_hash(a) == state_hash(dict(reversed(list(a.items()))))
    b = dict(a)
    b["norm.weight"] = b["norm.weight"] + 1e-3
    assert state_hash(a) != state_hash(b)


def test_missing_corrupt_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.safetensors")
    good = _expert(tmp_path, "seg", "abc", _encoder(0))
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(good.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=r"corrupt\.safetensors: not a readable safetensors"):
        load_checkpoint(corrupt)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"x": torch.zeros(1)}, str(foreign))
    with pytest.raises(CheckpointError, match="no simokit metadata"):
        load_checkpoint(foreign)


def _load_all(*paths: Path) -> list[Checkpoint]:
    return [load_checkpoint(p) for p in paths]


def test_compatible_experts_pass(tmp_path: Path) -> None:
    check_compatible(
        _load_all(_expert(tmp_path, "a", "h", _encoder(0)), _expert(tmp_path, "b", "h", _encoder(1)))
    )


def test_other_base_is_refused_naming_the_expert(tmp_path: Path) -> None:
    a = _expert(tmp_path, "a", "h1", _encoder(0))
    b = _expert(tmp_path, "b", "h2", _encoder(1))
    with pytest.raises(CheckpointError, match=r"b\.safetensors: fine-tuned from base h2"):
        check_compatible(_load_all(a, b))


def test_unknown_base_checks_architecture_only_and_layerscale_init_is_ignored(tmp_path: Path) -> None:
    a = _expert(tmp_path, "a", "h1", _encoder(0), arch={"embed_dim": 4, "depth": 1, "init_values": 1e-5})
    imported = _expert(
        tmp_path, "imp", "", _encoder(1), arch={"embed_dim": 4, "depth": 1, "init_values": 1.0}
    )
    check_compatible(_load_all(a, imported))  # no base recorded: architecture, keys and shapes only
    plain = _expert(
        tmp_path, "plain", "", _encoder(1), arch={"embed_dim": 4, "depth": 1, "init_values": None}
    )
    with pytest.raises(CheckpointError, match=r"plain\.safetensors .*differ in init_values"):
        check_compatible(_load_all(a, plain))


def test_other_architecture_missing_key_and_dtype_are_refused(tmp_path: Path) -> None:
    a = _expert(tmp_path, "a", "h", _encoder(0))
    arch = _expert(tmp_path, "arch", "h", _encoder(1), arch={"embed_dim": 8, "depth": 1})
    with pytest.raises(CheckpointError, match=r"arch\.safetensors \(dim 8.*different encoders .*embed_dim"):
        check_compatible(_load_all(a, arch))
    short = _encoder(1)
    del short["norm.weight"]
    with pytest.raises(CheckpointError, match=r"short\.safetensors: encoder keys differ .*missing"):
        check_compatible(_load_all(a, _expert(tmp_path, "short", "h", short)))
    half = {k: v.half() for k, v in _encoder(1).items()}
    with pytest.raises(CheckpointError, match=r"half\.safetensors: encoder\..*torch.float16"):
        check_compatible(_load_all(a, _expert(tmp_path, "half", "h", half)))


def test_base_given_explicitly_is_hashed(tmp_path: Path) -> None:
    base_enc = _encoder(7)
    base = save_checkpoint(
        tmp_path / "base.safetensors",
        CheckpointMeta(kind="base", encoder={"embed_dim": 4, "depth": 1}),
        base_enc,
    )
    good = _expert(tmp_path, "good", state_hash(base_enc), _encoder(0))
    bad = _expert(tmp_path, "bad", "0" * 64, _encoder(0))
    check_compatible(_load_all(good), load_checkpoint(base))
    with pytest.raises(CheckpointError, match=r"bad\.safetensors"):
        check_compatible(_load_all(bad), load_checkpoint(base))

"""Streaming merge from checkpoint files: equal to the in-memory merge, atomic, compatible files only."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from simokit.errors import CheckpointError, ConfigError
from simokit.merge import available_methods, merge_files, merge_state_dicts
from simokit.merge.methods.task_arithmetic import TaskArithmetic
from simokit.merge.writer import SafetensorsWriter
from simokit.models.checkpoint import CheckpointMeta, save_checkpoint

StateDict = dict[str, torch.Tensor]
Family = Callable[[int], tuple[StateDict, list[StateDict]]]
ARCH = {"embed_dim": 8, "depth": 2}


def _write_family(tmp_path: Path, base: StateDict, experts: list[StateDict]) -> tuple[Path, list[Path]]:
    base_path = save_checkpoint(
        tmp_path / "base.safetensors", CheckpointMeta(kind="base", encoder=ARCH), base
    )
    paths = []
    for t, expert in enumerate(experts):
        meta = CheckpointMeta(kind="expert", encoder=ARCH, heads={f"task{t}": {"kind": "linear"}})
        head = {f"task{t}": {"weight": torch.randn(3, 8)}}
        paths.append(save_checkpoint(tmp_path / f"expert{t}.safetensors", meta, expert, head))
    return base_path, paths


def _read_all(path: Path) -> tuple[StateDict, dict[str, str]]:
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata() or {}  # noqa: SIM118


LEARNED = {"adamerging_tap": {"base": "ties", "k": 0.3, "coefficients": [[0.2, 0.5, 0.9, 1.1]] * 3}}
CASES = [(name, LEARNED.get(name, {})) for name in sorted(available_methods())] + [
    ("ties", {"scope": "tensor", "k": 0.3}),
    ("dare", {"seed": 5, "p": 0.5}),
    ("tall_mask", {"task": 2, "lam": 0.2}),
]


@pytest.mark.parametrize(("method", "hparams"), CASES)
def test_streaming_equals_in_memory_exactly(
    tmp_path: Path, vit_family: Family, method: str, hparams: dict[str, object]
) -> None:
    base, experts = vit_family(3)
    base_path, expert_paths = _write_family(tmp_path, base, experts)
    out = merge_files(
        base_path, expert_paths, method, tmp_path / "out.safetensors", metadata={"m": method}, **hparams
    )
    streamed, meta = _read_all(out)
    expected = merge_state_dicts(base, experts, method, **hparams)
    assert meta == {"m": method}
    assert set(streamed) == {f"encoder.{k}" for k in expected}
    for key, tensor in expected.items():
        assert torch.equal(streamed[f"encoder.{key}"], tensor), key


def test_writer_round_trips_dtypes_shapes_and_metadata(tmp_path: Path) -> None:
    tensors = {
        "a": torch.randn(3, 4),
        "b": torch.randn(5).to(torch.bfloat16),
        "c": torch.tensor(7, dtype=torch.int64),
        "d": torch.tensor([True, False, True]),
        "e": torch.zeros(0, 3, dtype=torch.float16),
        "f": torch.randn(2, 3).double().T,  # non-contiguous
    }
    entries = [
        (
            k,
            {
                torch.float32: "F32",
                torch.bfloat16: "BF16",
                torch.int64: "I64",
                torch.bool: "BOOL",
                torch.float16: "F16",
                torch.float64: "F64",
            }[v.dtype],
            tuple(v.shape),
        )
        for k, v in tensors.items()
    ]
    with SafetensorsWriter(tmp_path / "x.safetensors", entries, {"simokit": "{}", "note": "hi"}) as writer:
        for key, value in tensors.items():
            writer.write(key, value)
    loaded, meta = _read_all(tmp_path / "x.safetensors")
    assert meta == {"simokit": "{}", "note": "hi"}
    for key, value in tensors.items():
        assert loaded[key].dtype == value.dtype and torch.equal(loaded[key], value), key


def test_writer_refuses_out_of_order_tensors_and_bad_metadata(tmp_path: Path) -> None:
    entries = [("a", "F32", (2,)), ("b", "F32", (2,))]
    with pytest.raises(RuntimeError, match="expected"), SafetensorsWriter(tmp_path / "y", entries) as writer:
        writer.write("b", torch.zeros(2))
    with pytest.raises(ConfigError, match="str to str"):
        SafetensorsWriter(tmp_path / "z", entries, {"n": 1})  # type: ignore[dict-item]


def test_failure_leaves_no_temp_file_and_keeps_the_old_output(
    tmp_path: Path, vit_family: Family, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, experts = vit_family(2)
    base_path, expert_paths = _write_family(tmp_path, base, experts)
    out = tmp_path / "out" / "merged.safetensors"
    out.parent.mkdir()
    out.write_bytes(b"previous")
    calls = []

    def failing(self: TaskArithmetic, key: str, taus: list[torch.Tensor]) -> torch.Tensor:
        calls.append(key)
        if len(calls) == 5:
            raise RuntimeError("boom")
        return torch.zeros_like(taus[0])

    monkeypatch.setattr(TaskArithmetic, "merge_tensor", failing)
    with pytest.raises(RuntimeError, match="boom"):
        merge_files(base_path, expert_paths, "sum", out)
    assert [p.name for p in out.parent.iterdir()] == ["merged.safetensors"]
    assert out.read_bytes() == b"previous"


def test_incompatible_files_are_named_before_anything_is_written(tmp_path: Path, vit_family: Family) -> None:
    base, experts = vit_family(2)
    experts[1]["blocks.0.mlp.fc1.weight"] = torch.zeros(4, 8)
    base_path, expert_paths = _write_family(tmp_path, base, experts)
    out = tmp_path / "merged.safetensors"
    with pytest.raises(
        CheckpointError, match=r"expert file .*expert1.safetensors: 'blocks.0.mlp.fc1.weight'"
    ):
        merge_files(base_path, expert_paths, "sum", out)
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        merge_files(base_path, [tmp_path / "missing.safetensors"], "sum", out)
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match=r"junk\.safetensors: not a readable safetensors file"):
        merge_files(base_path, [tmp_path / "junk.safetensors"], "sum", out)
    with pytest.raises(ConfigError, match="unknown merge method"):
        merge_files(base_path, expert_paths[:1], "summ", out)
    assert not out.exists() and not list(tmp_path.glob(".merged*"))

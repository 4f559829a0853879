"""Streaming merge of simokit checkpoint files: one tensor per file in memory at a time.

Tensors are read with `safe_open` like mergekit's lazy loader, but a file is opened per read and
closed at once: safe_open memory-maps the file, and a long-lived map keeps every page it touched
in the process's resident set, which would grow to the size of all inputs. The output goes
through `SafetensorsWriter` into a temporary file renamed over `out_path` only on success.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from simokit.cache import atomic_path
from simokit.errors import CheckpointError
from simokit.merge.api import TensorSpec, compare_specs, prepare, run_merge
from simokit.merge.writer import FLOAT_NAMES, SafetensorsWriter

PREFIX = "encoder."


def _open(path: Path) -> Any:
    from safetensors import safe_open

    try:
        return safe_open(str(path), framework="pt")
    except Exception as exc:  # safetensors raises several private error types for damaged files
        raise CheckpointError(
            f"{path}: not a readable safetensors file ({type(exc).__name__}: {exc})"
        ) from None


def encoder_specs(path: Path) -> dict[str, TensorSpec]:
    """Return {key without 'encoder.': (dtype name, shape)} from a file's header (no tensor is read)."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    with _open(path) as f:
        names = [k for k in f.keys() if k.startswith(PREFIX)]  # noqa: SIM118 - safe_open has no __iter__
        specs = {}
        for name in names:
            view = f.get_slice(name)
            specs[name[len(PREFIX) :]] = (str(view.get_dtype()), tuple(view.get_shape()))
    if not specs:
        raise CheckpointError(f"{path}: holds no encoder.* tensors; pass a simokit base or expert checkpoint")
    return specs


def read_tensor(path: Path, key: str) -> Tensor:
    """Read `encoder.<key>` from `path`, closing the file (and its memory map) straight away."""
    with _open(path) as f:
        tensor: Tensor = f.get_tensor(PREFIX + key)
    return tensor


def merge_files(
    base_path: str | Path,
    expert_paths: Sequence[str | Path],
    method: str,
    out_path: str | Path,
    *,
    metadata: dict[str, str] | None = None,
    **hparams: Any,
) -> Path:
    """Merge the experts' `encoder.*` tensors into `out_path` (encoder tensors + `metadata`) atomically."""
    base = Path(base_path)
    experts = [Path(p) for p in expert_paths]
    specs = encoder_specs(base)
    keys = list(specs)
    merger = prepare(len(experts), keys, method, hparams)
    for path in experts:
        compare_specs(specs, encoder_specs(path), f"expert file {path}", f"base file {base}")
    float_keys = {k for k, (dtype, _) in specs.items() if dtype in FLOAT_NAMES}
    entries = [(PREFIX + k, specs[k][0], specs[k][1]) for k in keys]

    def load(key: str) -> tuple[Tensor, list[Tensor]]:
        return read_tensor(base, key), [read_tensor(p, key) for p in experts]

    out = Path(out_path)
    with atomic_path(out) as tmp, SafetensorsWriter(tmp, entries, metadata) as writer:
        run_merge(merger, keys, float_keys, load, lambda key, t: writer.write(PREFIX + key, t))
    return out

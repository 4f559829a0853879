"""A streaming safetensors writer: fix the header from names, dtypes and shapes, then append tensors.

Format: 8-byte little-endian header length N, N bytes of JSON (`{name: {dtype, shape,
data_offsets: [begin, end]}, "__metadata__": {str: str}}`, space-padded so data starts 8-byte
aligned), then the raw little-endian tensor bytes at those offsets. Knowing every shape up front
lets the merge write each tensor as soon as it is produced and never hold the whole output.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import torch
from torch import Tensor

from simokit.errors import CheckpointError, ConfigError

DTYPE_NAMES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}
ITEM_SIZES = {name: torch.empty(0, dtype=dtype).element_size() for dtype, name in DTYPE_NAMES.items()}
FLOAT_NAMES = frozenset({"F64", "F32", "F16", "BF16"})
# (name, safetensors dtype name such as "F32", shape) of one tensor to be written.
Entry = tuple[str, str, tuple[int, ...]]


def dtype_name(dtype: torch.dtype) -> str:
    """Return the safetensors name of a torch dtype ("F32", …); unsupported dtypes raise CheckpointError."""
    if dtype not in DTYPE_NAMES:
        raise CheckpointError(
            f"dtype {dtype} cannot be written to safetensors here; use {sorted(ITEM_SIZES)}"
        )
    return DTYPE_NAMES[dtype]


def build_header(entries: Sequence[Entry], metadata: dict[str, str] | None) -> bytes:
    """Return the length-prefixed, padded JSON header laying `entries` out back to back."""
    header: dict[str, object] = {}
    if metadata:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise ConfigError("safetensors metadata must map str to str; json.dumps nested values first")
        header["__metadata__"] = dict(metadata)
    offset = 0
    for name, dtype, shape in entries:
        if dtype not in ITEM_SIZES:
            raise CheckpointError(f"tensor '{name}' has dtype {dtype}, not one of {sorted(ITEM_SIZES)}")
        size = math.prod(shape) * ITEM_SIZES[dtype]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw


class SafetensorsWriter:
    """Write `entries` in order to `path`; each `write` must match the next entry's name, dtype, shape."""

    def __init__(
        self, path: str | Path, entries: Sequence[Entry], metadata: dict[str, str] | None = None
    ) -> None:
        self._entries = list(entries)
        self._next = 0
        header = build_header(self._entries, metadata)
        self._file = open(path, "wb")  # noqa: SIM115 - closed by close()/__exit__
        self._file.write(header)

    def write(self, name: str, tensor: Tensor) -> None:
        """Append the bytes of the next tensor (any shape; checked against the header)."""
        if self._next >= len(self._entries):
            raise RuntimeError(f"safetensors writer: '{name}' written after the last declared tensor")
        want = self._entries[self._next]
        got = (name, dtype_name(tensor.dtype), tuple(tensor.shape))
        if got != want:
            raise RuntimeError(f"safetensors writer: expected {want}, got {got}")
        if tensor.numel():
            self._file.write(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().data)
        self._next += 1

    def close(self) -> None:
        """Close the file; raises if some declared tensor was never written."""
        self._file.close()
        if self._next != len(self._entries):
            raise RuntimeError(
                f"safetensors writer: {len(self._entries) - self._next} declared tensors not written"
            )

    def __enter__(self) -> SafetensorsWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self._file.close()

"""Domain engines stored as one base graph plus per-domain weight deltas (no torch, no onnx here).

A delta routed bundle keeps `base.onnx` (its large weights in `base.onnx.data`, ONNX's external
data format) and, per domain, `domains/<d>/delta.npz`. Opening a domain decodes its delta against
the base weights (memory-mapped through `base.json`, the offsets written at build time, so no ONNX
parser is needed) and hands the results to ONNX Runtime as initializer overrides of the base graph.

delta.npz holds `index` (JSON text as uint8) and arrays `a0`, `a1`, ...; each changed tensor is
  dense:   [values]                          -> values
  lowrank: [u (m, r), v (r, n)]              -> base + (u @ v) viewed as the tensor's shape
  mask:    [packbits(changed), values]       -> base, with the changed entries += values
  index:   [flat uint32 positions, values]   -> the same, for very sparse deltas
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from simokit.runtime.bundle import BundleError

BASE_GRAPH = "base.onnx"
BASE_DATA = "base.onnx.data"
BASE_INDEX = "base.json"
DELTA_FILE = "delta.npz"
KINDS = ("dense", "lowrank", "mask", "index")


def matrix_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    """The 2-D view a low-rank delta factorises: leading unit axes dropped, then (first, rest)."""
    dims = list(shape)
    while len(dims) > 2 and dims[0] == 1:
        dims.pop(0)
    if len(dims) < 2:
        raise ValueError(f"shape {shape} has no matrix view")
    return dims[0], int(np.prod(dims[1:]))


def decode(entry: dict[str, Any], arrays: list[np.ndarray], base: np.ndarray | None) -> np.ndarray:
    """One tensor's new value from its delta entry, its arrays and the base value (float32)."""
    kind, shape = entry["kind"], tuple(entry["shape"])
    if kind == "dense":
        return np.ascontiguousarray(arrays[0].reshape(shape))
    if base is None:
        raise ValueError(f"a {kind} delta needs the base tensor")
    if kind == "lowrank":
        return np.ascontiguousarray(base + (arrays[0] @ arrays[1]).reshape(shape))
    out = np.array(base, dtype=base.dtype, copy=True).reshape(-1)
    if kind == "mask":
        changed = np.unpackbits(arrays[0], count=out.size).astype(bool)
        out[changed] += arrays[1]
    elif kind == "index":
        out[arrays[0].astype(np.int64)] += arrays[1]
    else:
        raise ValueError(f"unknown delta kind '{kind}'")
    return out.reshape(shape)


def read_delta(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(index, arrays by key) of a delta.npz; BundleError if it is not one."""
    try:
        with np.load(path, allow_pickle=False) as data:
            index = json.loads(bytes(data["index"]).decode())
            arrays = {k: data[k] for k in data.files if k != "index"}
    except (OSError, KeyError, ValueError) as exc:
        raise BundleError(f"{path}: not a readable weight delta ({exc})") from None
    if index.get("format") != 1:
        raise BundleError(f"{path}: delta format {index.get('format')} unknown to this simokit")
    return index, arrays


def base_tensor(root: Path, info: dict[str, Any]) -> np.ndarray:
    """A base weight memory-mapped from base.onnx.data (read-only)."""
    return np.memmap(
        root / BASE_DATA,
        dtype=np.dtype(info["dtype"]),
        mode="r",
        offset=int(info["offset"]),
        shape=tuple(info["shape"]),
    )


def domain_initializers(root: Path, domain_dir: Path) -> dict[str, np.ndarray]:
    """Every tensor a domain changes in the base graph, decoded: {initializer name: float32 array}."""
    try:
        tensors = json.loads((root / BASE_INDEX).read_text())["tensors"]
    except (OSError, KeyError, ValueError) as exc:
        raise BundleError(f"{root / BASE_INDEX}: base weight index unusable ({exc})") from None
    index, arrays = read_delta(domain_dir / DELTA_FILE)
    out = {}
    for name, entry in index["tensors"].items():
        info = tensors.get(name)
        try:
            base = base_tensor(root, info) if info is not None else None
            out[name] = decode(entry, [arrays[k] for k in entry["arrays"]], base)
        except (OSError, KeyError, ValueError) as exc:
            raise BundleError(f"{domain_dir / DELTA_FILE}: tensor '{name}' does not decode ({exc})") from None
    return out

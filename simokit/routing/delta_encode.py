"""Encode domain graphs as weight deltas against one base graph (build side; see runtime.deltas).

Every domain's graph is exported and verified in full first; this module then checks that it has
the base graph's structure (same nodes, same initializer names, shapes and types: only weight
values may differ) and stores, per changed initializer, the cheapest encoding that reproduces it
to float32 rounding: a low-rank factor pair, a sparse mask or index list with the changed values,
or the tensor itself. Whether a delta *is* low-rank or sparse is decided by the weights (the
recipe's `routing.delta` compression made them so), and every encoding is checked by decoding it
exactly as the robot will.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from simokit.cache import atomic_path
from simokit.errors import SimokitError
from simokit.runtime.delta_decode import BASE_DATA, BASE_INDEX, decode, matrix_shape

# A decoded tensor may differ from the domain's by this much, relative to its largest entry: a few
# float32 roundings of base + delta (the factors cannot reproduce rounding noise exactly).
EXACT = 1e-6
_INLINE_BYTES = 1024  # smaller initializers stay inside base.onnx; their deltas are stored dense


class DeltaError(SimokitError):
    """A domain graph cannot be expressed as a delta of the base graph."""


def structure_key(model: Any) -> bytes:
    """The graph with initializer values blanked: equal keys mean only weight values differ."""
    import onnx

    graph = onnx.GraphProto()
    graph.CopyFrom(model.graph)
    for t in graph.initializer:
        t.ClearField("raw_data")
        for name in ("float_data", "int32_data", "int64_data", "double_data", "external_data"):
            t.ClearField(name)
        t.ClearField("data_location")
    graph.ClearField("name")
    return graph.SerializeToString(deterministic=True)


def write_base(model: Any, folder: Path, name: str) -> dict[str, Any]:
    """Save `model` as folder/name with its larger weights in folder/BASE_DATA (ONNX external data);
    write and return the offset index. `folder` is the bundle's temporary build directory."""
    import onnx
    from onnx import numpy_helper

    model = _copy(model)
    tensors = {}
    # written by hand rather than with onnx's converter, which refuses when a file of the data
    # file's name exists in the current directory (it resolves the location against the cwd)
    with open(folder / BASE_DATA, "wb") as data:
        for t in model.graph.initializer:
            array = numpy_helper.to_array(t)
            if array.nbytes < _INLINE_BYTES:
                continue
            data.seek((data.tell() + 63) // 64 * 64)  # aligned, so a memory map can view it directly
            offset = data.tell()
            data.write(np.ascontiguousarray(array).tobytes())
            _point_external(t, offset, array.nbytes)
            tensors[t.name] = {"offset": offset, "dtype": array.dtype.name, "shape": list(array.shape)}
    onnx.save_model(model, str(folder / name))
    index = {"format": 1, "data": BASE_DATA, "tensors": tensors}
    (folder / BASE_INDEX).write_text(json.dumps(index, indent=1))
    return index


def share_base_weights(path: Path, folder: Path, index: dict[str, Any]) -> int:
    """Rewrite the graph at `path` (in `folder`, beside the base) so that every weight equal to a
    base weight is read from BASE_DATA instead of being stored again; return how many were."""
    import onnx
    from onnx import numpy_helper

    from simokit.runtime.delta_decode import base_tensor

    by_shape: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for info in index["tensors"].values():
        by_shape.setdefault((tuple(info["shape"]), info["dtype"]), []).append(info)
    model = onnx.load(str(path))
    shared = 0
    for t in model.graph.initializer:
        array = numpy_helper.to_array(t)
        for info in by_shape.get((array.shape, array.dtype.name), []):
            if array.nbytes >= _INLINE_BYTES and np.array_equal(base_tensor(folder, info), array):
                _point_external(t, info["offset"], array.nbytes)
                shared += 1
                break
    with atomic_path(path) as tmp:
        onnx.save_model(model, str(tmp))
    return shared


def _point_external(t: Any, offset: int, length: int) -> None:
    """Make initializer `t` read its bytes from BASE_DATA at `offset` (and hold none itself)."""
    import onnx

    t.ClearField("raw_data")
    for field in ("float_data", "int32_data", "int64_data", "double_data"):
        t.ClearField(field)
    t.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", BASE_DATA), ("offset", offset), ("length", length)):
        entry = t.external_data.add()
        entry.key, entry.value = key, str(value)


def encode_domain(base: Any, domain: Any, external: set[str], rank_hint: int | None = None) -> dict[str, Any]:
    """{'index': ..., 'arrays': [...], 'bytes': {...}} turning `base`'s weights into `domain`'s."""
    from onnx import numpy_helper

    if structure_key(base) != structure_key(domain):
        raise DeltaError(
            "domain graphs differ in structure (not only in weights), so they cannot share one base "
            "graph; build with routing.delta: none"
        )
    base_w = {t.name: numpy_helper.to_array(t) for t in base.graph.initializer}
    index: dict[str, Any] = {"format": 1, "tensors": {}}
    arrays: list[np.ndarray] = []
    counts: dict[str, int] = {}
    for t in domain.graph.initializer:
        new, old = numpy_helper.to_array(t), base_w[t.name]
        if np.array_equal(new, old):
            continue
        kind, parts = _cheapest(new, old if t.name in external else None, rank_hint)
        index["tensors"][t.name] = {
            "kind": kind,
            "shape": list(new.shape),
            "arrays": [f"a{len(arrays) + i}" for i in range(len(parts))],
        }
        arrays += parts
        counts[kind] = counts.get(kind, 0) + 1
    return {"index": index, "arrays": arrays, "counts": counts, "bytes": sum(a.nbytes for a in arrays)}


def save_delta(encoded: dict[str, Any], path: Path) -> None:
    """Write an encoded delta as an uncompressed .npz (np.load can memory-map nothing, but reads fast)."""
    payload = {f"a{i}": a for i, a in enumerate(encoded["arrays"])}
    payload["index"] = np.frombuffer(json.dumps(encoded["index"]).encode(), dtype=np.uint8)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **payload)


def _cheapest(
    new: np.ndarray, base: np.ndarray | None, rank_hint: int | None
) -> tuple[str, list[np.ndarray]]:
    """The smallest encoding of `new` that decodes to it within EXACT (dense if nothing smaller does)."""
    if base is None or new.dtype != np.float32:
        return "dense", [np.ascontiguousarray(new)]
    candidates: list[tuple[str, list[np.ndarray]]] = [("dense", [np.ascontiguousarray(new)])]
    diff = new - base
    changed = diff.reshape(-1) != 0
    values = diff.reshape(-1)[changed].astype(np.float32)
    candidates.append(("mask", [np.packbits(changed), values]))
    candidates.append(("index", [np.flatnonzero(changed).astype(np.uint32), values]))
    if new.ndim >= 2:
        candidates += _lowrank(diff, rank_hint)
    scale = max(float(np.abs(new).max()), 1e-30)
    entry = {"shape": list(new.shape)}
    for kind, parts in sorted(candidates, key=lambda c: sum(a.nbytes for a in c[1])):
        got = decode({**entry, "kind": kind}, parts, base)
        if float(np.abs(got - new).max()) <= EXACT * scale:
            return kind, parts
    return "dense", [np.ascontiguousarray(new)]


def _lowrank(diff: np.ndarray, rank_hint: int | None) -> list[tuple[str, list[np.ndarray]]]:
    """Factor pairs (u·s, vh) of the numerical rank and of the hinted rank, when they save space."""
    m, n = matrix_shape(diff.shape)
    u, s, vh = np.linalg.svd(diff.reshape(m, n).astype(np.float64), full_matrices=False)
    if s[0] == 0:
        return []
    ranks = {int((s > s[0] * EXACT).sum())}
    if rank_hint:
        ranks.add(min(rank_hint, len(s)))
    out = []
    for r in sorted(ranks):
        if r * (m + n) < m * n:
            out.append(("lowrank", [(u[:, :r] * s[:r]).astype(np.float32), vh[:r].astype(np.float32)]))
    return out


def _copy(model: Any) -> Any:
    import onnx

    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out

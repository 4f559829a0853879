"""What a bundle looks like to Triton: per-item IO dims, data types, and meta.json in the config.

Shared by `simokit export-triton` (config.pbtxt), `simokit serve` (pytriton) and the triton://
engine, so all three agree on one served form: the graph's own input (uint8 (H, W, 3) or float
(3, H, W) per item) and one output per task, batched by Triton along a leading axis. The bundle's
meta.json rides in the model config's `parameters` under META_PARAMETER, so a client rebuilds the
BundleMeta from the server alone. No tritonclient or pytriton imports here.
"""

from __future__ import annotations

import json
from typing import Any

from simokit.runtime.bundle import BundleError, BundleMeta, GraphIO, parse_meta

META_PARAMETER = "simokit_meta"
# meta.json dtype -> Triton's config data type.
TRITON_TYPES = {
    "uint8": "TYPE_UINT8",
    "float32": "TYPE_FP32",
    "float16": "TYPE_FP16",
    "int32": "TYPE_INT32",
    "int64": "TYPE_INT64",
}


def _dim(value: int | str) -> int:
    # 'H'/'W' (a graph that takes any size) become Triton's variable dim -1.
    return value if isinstance(value, int) else -1


def input_dims(meta: BundleMeta) -> list[int]:
    """Per-item input dims: [H, W, 3] for uint8 input, [3, H, W] for float; -1 where the size is free."""
    spec = meta.input
    free = spec.dynamic_hw or spec.io is GraphIO.FRAME  # frame IO: camera frames of any size
    h, w = (-1, -1) if free else (spec.height, spec.width)
    return [h, w, 3] if spec.kind == "uint8" else [3, h, w]


def example_shape(meta: BundleMeta, batch: int = 1) -> list[int]:
    """A concrete input batch shape: (B, H, W, 3) or (B, 3, H, W) at the bundle's default size."""
    spec = meta.input
    h, w = spec.height, spec.width
    return [batch, h, w, 3] if spec.kind == "uint8" else [batch, 3, h, w]


def input_dtype(meta: BundleMeta) -> str:
    """The input's numpy dtype name: 'uint8' or 'float32'."""
    return "uint8" if meta.input.kind == "uint8" else "float32"


def output_dims(meta: BundleMeta) -> dict[str, list[int]]:
    """{task: per-item dims} from meta.json's output shapes, batch axis dropped."""
    return {t: [_dim(d) for d in meta.outputs[t]["shape"][1:]] for t in meta.tasks}


def triton_type(dtype: str) -> str:
    """'float32' -> 'TYPE_FP32'; an unsupported dtype raises BundleError."""
    if dtype not in TRITON_TYPES:
        raise BundleError(f"dtype {dtype} has no Triton type here; supported: {', '.join(TRITON_TYPES)}")
    return TRITON_TYPES[dtype]


def meta_parameter(meta: BundleMeta) -> str:
    """meta.json as one compact ASCII line, the value stored under META_PARAMETER."""
    return json.dumps(json.loads(meta.to_json()), separators=(",", ":"), ensure_ascii=True)


def meta_from_config(config: dict[str, Any], where: str) -> BundleMeta:
    """BundleMeta from a model config as Triton returns it as JSON (HTTP, or gRPC as_json)."""
    params = config.get("parameters") or {}
    value = params.get(META_PARAMETER)
    text = value.get("string_value") if isinstance(value, dict) else None
    if not text:
        raise BundleError(
            f"{where} has no '{META_PARAMETER}' parameter, so it is not a simokit bundle; "
            "serve it with `simokit serve` or export it with `simokit export-triton`"
        )
    return parse_meta(text, f"{where} (config parameter {META_PARAMETER})")

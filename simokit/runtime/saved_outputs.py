"""What `simokit run --save` writes per frame: files a person opens, not raw graph tensors.

Class outputs become a label PNG (uint8, or uint16 past 256 classes), metric depth a 16-bit PNG in
millimetres (0 = no depth, the usual convention of depth cameras), unit vectors and other values
float32 .npy in (H, W[, C]) order. `raw` adds every output as float32/int .npy as the graph gave it.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from simokit.runtime.source_base import StreamError
from simokit.tasks.spec import OutputKind

_MM_MAX = 65535  # the largest 16-bit value: 65.535 m


def _npy(value: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, value)
    return buf.getvalue()


def _png(cv2: Any, image: np.ndarray, what: str) -> bytes:
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise StreamError(f"--save: PNG encoding of {what} failed")
    return bytes(data.tobytes())


def labels_of(value: np.ndarray, kind: OutputKind) -> np.ndarray:
    """Class ids (H, W) from a logits (C, H, W) or labels (H, W) output, in the smallest PNG dtype."""
    ids = value.argmax(axis=0) if kind is OutputKind.LOGITS else value
    return ids.astype(np.uint8 if ids.max(initial=0) < 256 else np.uint16)


def depth_millimetres(value: np.ndarray) -> np.ndarray:
    """Metres (1, H, W) or (H, W) -> uint16 millimetres; non-finite or negative -> 0, far -> 65535."""
    metres = np.asarray(value, dtype=np.float32).reshape(value.shape[-2:])
    mm = np.where(np.isfinite(metres) & (metres > 0), metres * 1000.0 + 0.5, 0.0)
    return np.clip(mm, 0, _MM_MAX).astype(np.uint16)


def output_files(
    cv2: Any, task: str, value: np.ndarray, kind: OutputKind, raw: bool = False
) -> dict[str, bytes]:
    """The files of one task's output for one frame: {suffix (e.g. "_seg.png"): bytes}."""
    files: dict[str, bytes] = {}
    if kind in (OutputKind.LOGITS, OutputKind.LABELS):
        files[f"_{task}.png"] = _png(cv2, labels_of(value, kind), f"{task} labels")
    elif kind is OutputKind.METRES:
        files[f"_{task}.png"] = _png(cv2, depth_millimetres(value), f"{task} millimetres")
    else:
        # (C, H, W) graph order -> (H, W, C) image order, single channels squeezed to (H, W)
        planes = np.moveaxis(np.asarray(value, dtype=np.float32), 0, -1) if value.ndim == 3 else value
        files[f"_{task}.npy"] = _npy(planes.squeeze(-1) if planes.shape[-1] == 1 else planes)
    if raw and f"_{task}.npy" not in files:
        files[f"_{task}.npy"] = _npy(value)
    return files

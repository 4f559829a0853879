"""Calibration data in the graph's own input layout, prepared by the runtime's exact code.

`prepare` is the runtime `Engine`'s pre-processing (same resize, colour order and normalisation as
on the robot; for a frame-IO graph, frames resized to the model's size by the runtime's INTER_AREA,
in the graph's channel order, which its own resize then leaves as they are); `load_calib_set`
pushes a deterministic subset of N frames through it once, and `OrtCalibReader` feeds those to
ONNX Runtime's calibrators. The same `CalibSet` feeds the TensorRT calibrator, so both routes see
identical tensors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import cast

import numpy as np
from onnxruntime.quantization import CalibrationDataReader
from tqdm import tqdm

from simokit.errors import ConfigError, DataError
from simokit.runtime.bundle import BundleMeta, Channels, GraphIO
from simokit.runtime.engine import Engine
from simokit.runtime.sampling import SampledSource

DEFAULT_N = 256


def prepare(meta: BundleMeta, rgb: np.ndarray) -> np.ndarray:
    """uint8 (B, H, W, 3) RGB -> the graph's input batch, by the runtime Engine's own pre-processing.

    That pre-processing reads only the bundle's input spec, so no graph or session is needed for it.
    A frame-IO graph gets model-size frames (any size is valid input; at the model's size its
    in-graph resize is the identity, so the model's layers see what the runtime would give them).
    """
    x = Engine._prepare(cast(Engine, SimpleNamespace(meta=meta)), rgb)
    if meta.input.io is GraphIO.FRAME and meta.input.channels is Channels.BGR:
        return np.ascontiguousarray(x[..., ::-1])
    return x


@dataclass(frozen=True)
class CalibSet:
    """N prepared inputs (N, ...) in the graph's layout, where they came from and their sha256."""

    inputs: np.ndarray
    input_name: str
    source: str
    indices: tuple[int, ...]
    sha256: str

    def __len__(self) -> int:
        """Number of calibration samples."""
        return len(self.inputs)

    def batches(self, size: int) -> list[np.ndarray]:
        """Consecutive batches of at most `size` samples (the last may be smaller)."""
        return [self.inputs[i : i + size] for i in range(0, len(self.inputs), size)]

    def to_dict(self) -> dict[str, object]:
        """What meta.json records about the calibration data."""
        return {"source": self.source, "n": len(self), "sha256": self.sha256}


def subset_indices(total: int, n: int, seed: int = 0) -> tuple[int, ...]:
    """A deterministic, sorted subset of n of range(total); all of them when n == total."""
    if n < 1:
        raise ConfigError(f"--n must be at least 1, got {n}")
    if n > total:
        raise DataError(
            f"asked for {n} calibration images but the data holds {total}; pass --n {total} or fewer"
        )
    if n == total:
        return tuple(range(total))
    chosen = np.random.default_rng(seed).choice(total, size=n, replace=False)
    return tuple(int(i) for i in np.sort(chosen))


def load_calib_set(
    source: SampledSource, meta: BundleMeta, n: int = DEFAULT_N, seed: int = 0, progress: bool = True
) -> CalibSet:
    """Read a deterministic subset of n RGB frames from `source` and prepare each as the runtime would."""
    indices = subset_indices(len(source), n, seed)
    digest = hashlib.sha256()
    samples = []
    frames: Iterator[np.ndarray] = source.frames(indices)
    for frame in tqdm(frames, total=len(indices), desc="calibration data", unit="img", disable=not progress):
        x = prepare(meta, frame[None])
        digest.update(x.tobytes())
        samples.append(x)
    return CalibSet(np.concatenate(samples), meta.input.name, source.description, indices, digest.hexdigest())


class OrtCalibReader(CalibrationDataReader):
    """ONNX Runtime's calibration reader over a CalibSet, in batches, with ranges for strided runs."""

    def __init__(self, data: CalibSet, batch: int = 8) -> None:
        self.data = data
        self.all = data.batches(batch)
        self.start, self.end, self.pos = 0, len(self.all), 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next batch as {input name: array}, or None when the range is exhausted."""
        if self.start + self.pos >= self.end:
            return None
        self.pos += 1
        return {self.data.input_name: self.all[self.start + self.pos - 1]}

    def rewind(self) -> None:
        """Start the current range again."""
        self.pos = 0

    def set_range(self, start_index: int, end_index: int) -> None:
        """Restrict to batches [start_index, end_index), as ORT's strided calibration asks."""
        self.start, self.end, self.pos = start_index, min(end_index, len(self.all)), 0

    def __len__(self) -> int:
        """Number of batches."""
        return len(self.all)

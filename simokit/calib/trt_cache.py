"""TensorRT's INT8 calibration cache, read and written in plain Python (no TensorRT needed).

The text format TensorRT writes: a header line 'TRT-<version>-<algorithm>' (e.g.
'TRT-100300-EntropyCalibration2'), then one 'tensor name: scale' line per tensor, where the scale
(amax / 127) is the hex of its float32 bit pattern ('3c010a14'). Tensor names may themselves hold
colons ('onnx::MatMul_700'), so a line splits at its last colon. TensorRT only reuses a cache whose
algorithm and version match its own, so both are kept exactly.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from simokit.cache import atomic_path
from simokit.errors import DataError

CACHE_FILE = "calib.cache"
ENTROPY2 = "EntropyCalibration2"
_HEADER = re.compile(r"^TRT-(\d+)-(\w+)$")


@dataclass(frozen=True)
class CalibCache:
    """Parsed cache: TensorRT version tag, calibration algorithm and {tensor name: scale}."""

    version: str
    algorithm: str = ENTROPY2
    scales: dict[str, float] = field(default_factory=dict)

    def amax(self, tensor: str) -> float:
        """The dynamic range |x| <= amax that TensorRT derives from the tensor's scale."""
        return self.scales[tensor] * 127.0


def scale_to_hex(scale: float) -> str:
    """float32 bit pattern of `scale` as 8 lower-case hex digits."""
    return struct.pack(">f", scale).hex()


def hex_to_scale(text: str) -> float:
    """Inverse of scale_to_hex; accepts fewer than 8 digits (leading zeros dropped)."""
    return float(struct.unpack(">f", int(text, 16).to_bytes(4, "big"))[0])


def parse_cache(data: bytes, where: str = "calibration cache") -> CalibCache:
    """Parse TensorRT cache bytes; anything else raises DataError naming `where`."""
    try:
        lines = data.decode("ascii").splitlines()
    except UnicodeDecodeError:
        raise DataError(
            f"{where}: not a TensorRT calibration cache (binary data); delete it and recalibrate"
        ) from None
    header = _HEADER.match(lines[0].strip()) if lines else None
    if header is None:
        raise DataError(
            f"{where}: first line should look like 'TRT-100300-{ENTROPY2}'; delete it and recalibrate"
        )
    scales: dict[str, float] = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        name, sep, value = line.rpartition(":")
        try:
            if not sep or not name:
                raise ValueError(line)
            scales[name] = hex_to_scale(value.strip())
        except (ValueError, OverflowError):
            raise DataError(f"{where}: line {number} is not 'tensor: hex-float32' ({line[:60]!r})") from None
    return CalibCache(header.group(1), header.group(2), scales)


def format_cache(cache: CalibCache) -> bytes:
    """The bytes TensorRT would write for `cache` (header, then one line per tensor)."""
    lines = [f"TRT-{cache.version}-{cache.algorithm}"]
    lines += [f"{name}: {scale_to_hex(scale)}" for name, scale in cache.scales.items()]
    return ("\n".join(lines) + "\n").encode("ascii")


def calibration_profile(sample: Sequence[int], batch: int) -> tuple[list[int], list[int], list[int]]:
    """TensorRT's (min, opt, max) input shapes for calibrating on batches of `batch` prepared samples.

    The samples fix every axis but the batch; a frame-IO graph, whose H and W are free, is thus
    calibrated on model-size frames, which its in-graph resize passes through unchanged.
    """
    if batch < 1 or not sample:
        raise DataError(
            f"calibration batches need a size >= 1 and a sample shape; got {batch}, {list(sample)}"
        )
    return [1, *sample], [batch, *sample], [batch, *sample]


def read_cache(path: Path) -> CalibCache:
    """Read and parse a cache file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read calibration cache ({exc.strerror})") from None
    return parse_cache(data, str(path))


def write_cache_bytes(path: Path, data: bytes) -> Path:
    """Check that `data` parses as a cache, then write it atomically."""
    parse_cache(data, str(path))
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path

"""TensorRT's calibration cache format, without TensorRT; the calibrator itself only where TensorRT is."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from simokit.calib.trt_cache import (
    CalibCache,
    format_cache,
    hex_to_scale,
    parse_cache,
    read_cache,
    scale_to_hex,
    write_cache_bytes,
)
from simokit.errors import DataError

# A cache as TensorRT writes it: header, then 'name: float32 bits in hex' (names may hold colons).
SAMPLE = b"""TRT-100300-EntropyCalibration2
image: 3c010a14
/model/blocks.0/norm1/LayerNormalization_output_0: 3d2a8f5c
onnx::MatMul_700: 3b8d2e11
(Unnamed Layer* 12) [Shuffle]_output: 3e691968
"""


def test_parse_sample_and_round_trip_exactly() -> None:
    cache = parse_cache(SAMPLE)
    assert cache.version == "100300" and cache.algorithm == "EntropyCalibration2"
    assert list(cache.scales) == [
        "image",
        "/model/blocks.0/norm1/LayerNormalization_output_0",
        "onnx::MatMul_700",
        "(Unnamed Layer* 12) [Shuffle]_output",
    ]
    assert cache.scales["image"] == struct.unpack(">f", bytes.fromhex("3c010a14"))[0]
    assert cache.amax("image") == pytest.approx(0.00787 * 127, rel=1e-3)
    assert format_cache(cache) == SAMPLE  # byte-identical after parse + format


def test_scales_survive_a_file_round_trip(tmp_path: Path) -> None:
    scales = {"image": 0.0207893, "a::b:c": 1.5e-3, "tiny": 3.0e-30, "big": 1234.5}
    cache = CalibCache("8601", scales=scales)
    path = write_cache_bytes(tmp_path / "calib.cache", format_cache(cache))
    back = read_cache(path)
    assert back.version == "8601" and back.algorithm == "EntropyCalibration2"
    for name, value in scales.items():
        assert back.scales[name] == struct.unpack(">f", struct.pack(">f", value))[0]  # float32-exact
    assert hex_to_scale("3c010a14") == hex_to_scale(scale_to_hex(hex_to_scale("3c010a14")))
    assert hex_to_scale("1") == struct.unpack(">f", (1).to_bytes(4, "big"))[0]  # leading zeros dropped
    assert [p.name for p in tmp_path.iterdir()] == ["calib.cache"]


def test_malformed_caches_are_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="first line should look like 'TRT-100300-EntropyCalibration2'"):
        parse_cache(b"EntropyCalibration2\nimage: 3c010a14\n")
    with pytest.raises(DataError, match=r"line 3 is not 'tensor: hex-float32'"):
        parse_cache(b"TRT-8601-EntropyCalibration2\nimage: 3c010a14\nbroken line\n")
    with pytest.raises(DataError, match=r"line 2 is not 'tensor: hex-float32'"):
        parse_cache(b"TRT-8601-EntropyCalibration2\nimage: zz\n")
    with pytest.raises(DataError, match="binary data"):
        parse_cache(b"\xff\xfe\x00")
    target = tmp_path / "calib.cache"
    with pytest.raises(DataError):
        write_cache_bytes(target, b"garbage")
    assert not list(tmp_path.iterdir())  # nothing written, no temp file left
    with pytest.raises(DataError, match="cannot read calibration cache"):
        read_cache(tmp_path / "missing.cache")


def _tensorrt_usable() -> bool:
    try:
        import tensorrt
    except ImportError:
        return False
    return hasattr(tensorrt, "Builder")  # tensorrt-stubs alone import as an empty namespace package


@pytest.mark.skipif(not _tensorrt_usable(), reason="needs TensorRT (and a GPU for calibration)")
def test_entropy_calibrator_serves_an_existing_cache(tmp_path: Path) -> None:
    from simokit.calib.trt_calib import cache_calibrator

    path = write_cache_bytes(tmp_path / "calib.cache", SAMPLE)
    calibrator = cache_calibrator(path)
    assert calibrator.read_calibration_cache() == SAMPLE
    assert calibrator.get_batch(["image"]) == []  # no data: TensorRT must use the cache
    calibrator.write_calibration_cache(SAMPLE.replace(b"3c010a14", b"3c010a15"))
    assert read_cache(path).scales["image"] == hex_to_scale("3c010a15")

"""model.engine.json: what a TensorRT engine was built with, so a mismatched one is refused clearly.

A serialized engine only loads with the TensorRT version that built it and runs correctly only on
the GPU model it was tuned for. The sidecar records both, plus precision, profiles and the hashes
of the ONNX graph it came from and of the engine itself; the runner compares them before
deserializing. The engine file stays plain TensorRT bytes (trtexec and Triton load it as is).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from simokit.cache import atomic_path
from simokit.errors import ConfigError
from simokit.runtime.bundle import MODEL_FILE, BundleError
from simokit.runtime.trt import ENGINE_FILE, SIDECAR_FILE

SIDECAR_FORMAT = 1


@dataclass(frozen=True)
class EngineInfo:
    """The sidecar's fields; `extra` holds build options and the FP32 plan summary."""

    tensorrt: str
    gpu: str
    compute_capability: str
    precision: str
    profiles: list[dict[str, Any]]
    onnx_file: str
    onnx_sha256: str
    engine_sha256: str
    dla_core: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def rebuild_hint(self, bundle: Path) -> str:
        """The command that rebuilds this engine with the same precision on the current device."""
        flags = {"fp16": " --fp16", "int8": " --int8"}
        opts = "".join(flags[p] for p in self.precision.split("+") if p in flags)
        if self.precision == "typed":
            opts += " --strongly-typed"
        if self.onnx_file != MODEL_FILE:
            opts += f" --onnx {self.onnx_file}"
        if self.dla_core is not None:
            opts += f" --dla {self.dla_core}"
        if self.extra.get("options", {}).get("io") == "frame" and self.profiles:
            shapes = {k: self.profiles[0][k] for k in ("min", "opt", "max")}
            opts += "".join(f" --frame-{k} {s[1]}x{s[2]}" for k, s in shapes.items())
        return f"simokit build-engine {bundle}{opts}"


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sidecar_json(info: EngineInfo) -> str:
    """The sidecar's text."""
    return json.dumps({"format": SIDECAR_FORMAT, **asdict(info)}, indent=1)


def write_sidecar(bundle: Path, info: EngineInfo) -> Path:
    """Write `<bundle>/model.engine.json` atomically."""
    path = Path(bundle) / SIDECAR_FILE
    with atomic_path(path) as tmp:
        tmp.write_text(sidecar_json(info))
    return path


def read_sidecar(bundle: Path) -> EngineInfo:
    """Read `<bundle>/model.engine.json`; missing or malformed raises BundleError naming the fix."""
    path = Path(bundle) / SIDECAR_FILE
    rebuild = f"build it on this device: simokit build-engine {bundle}"
    if not (Path(bundle) / ENGINE_FILE).is_file():
        raise BundleError(f"{bundle}: no {ENGINE_FILE}; {rebuild}")
    if not path.is_file():
        raise BundleError(f"{bundle}: {ENGINE_FILE} has no {SIDECAR_FILE}; {rebuild}")
    try:
        raw = json.loads(path.read_text())
        if raw.pop("format", None) != SIDECAR_FORMAT:
            raise BundleError(f"{path}: unknown sidecar format; {rebuild}")
        return EngineInfo(**raw)
    except (json.JSONDecodeError, TypeError, AttributeError) as exc:
        raise BundleError(f"{path}: malformed ({exc}); {rebuild}") from None


def check_engine(
    bundle: Path,
    info: EngineInfo,
    tensorrt: str,
    gpu: str,
    compute_capability: str,
    hashes: bool = True,
) -> None:
    """Refuse an engine built by another TensorRT, for another GPU, or from another model.onnx.

    Raises BundleError saying what differs and the command that rebuilds the engine here.
    """
    hint = f"engines only run with the TensorRT and GPU that built them; rebuild: {info.rebuild_hint(bundle)}"
    engine = Path(bundle) / ENGINE_FILE
    if info.tensorrt != tensorrt:
        raise BundleError(f"{engine} was built with TensorRT {info.tensorrt}, this is {tensorrt}; {hint}")
    if (info.gpu, info.compute_capability) != (gpu, compute_capability):
        raise BundleError(
            f"{engine} was built for {info.gpu} (compute {info.compute_capability}), "
            f"this is {gpu} (compute {compute_capability}); {hint}"
        )
    if not hashes:
        return
    onnx_path = Path(bundle) / info.onnx_file
    if onnx_path.is_file() and file_sha256(onnx_path) != info.onnx_sha256:
        raise BundleError(f"{engine} was built from an older {info.onnx_file}; {hint}")
    if file_sha256(engine) != info.engine_sha256:
        raise BundleError(f"{engine} does not match its {SIDECAR_FILE} (interrupted build?); {hint}")


def check_precision(requested: str | None, built: str) -> None:
    """Refuse a requested precision the engine was not built with (never swap it silently)."""
    if requested is not None and requested not in built.split("+"):
        raise ConfigError(f"the engine was built as {built}, not {requested}; rebuild: simokit build-engine")

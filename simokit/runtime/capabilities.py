"""One table of runtime backends: what each needs installed and which precisions it can run.

`load()`, the CLI and the engine builder all look backends up here, so a backend's name, its
install hint and its precisions are written once. Nothing here imports an optional library;
`require()` only asks the import system whether one is present.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from simokit.errors import ConfigError


@dataclass(frozen=True)
class Backend:
    """A runtime backend: needed packages (by pip name), how to install them, precisions."""

    name: str
    needs: tuple[str, ...]
    install: str
    precisions: tuple[str, ...]
    summary: str


# Each pip package -> importable module names, any one of which satisfies it (cuda-python moved
# its runtime bindings from cuda.cudart to cuda.bindings.runtime in 12.6).
MODULES: dict[str, tuple[str, ...]] = {
    "onnxruntime": ("onnxruntime",),
    "torch": ("torch",),
    "tensorrt": ("tensorrt",),
    "cuda-python": ("cuda.bindings.runtime", "cuda.cudart"),
}

BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend(
            "onnxruntime",
            ("onnxruntime",),
            "pip install simokit (CPU) or 'simokit[gpu]' (CUDA)",
            ("fp32", "fp16", "int8-qdq"),
            "ONNX Runtime: CPU everywhere, CUDA where onnxruntime-gpu is installed",
        ),
        Backend(
            "ort-tensorrt",
            ("onnxruntime",),
            "an onnxruntime-gpu build with the TensorRT execution provider (JetPack's wheel on Jetson)",
            ("fp32", "fp16", "int8-qdq"),
            "ONNX Runtime's TensorRT execution provider; engine cache inside the bundle",
        ),
        Backend(
            "tensorrt",
            ("tensorrt", "cuda-python"),
            "pip install 'simokit[trt]' (on a Jetson: TensorRT from JetPack, then pip install cuda-python)",
            ("fp32", "fp16", "int8", "int8-qdq"),
            "native TensorRT engine (model.engine) built on the target device",
        ),
        Backend(
            "torch",
            ("torch",),
            "pip install 'simokit[build]'",
            ("fp32",),
            "PyTorch eager reference on the CPU (bundle's merged.safetensors)",
        ),
    )
}


def backend(name: str) -> Backend:
    """The table entry for `name`; an unknown name raises ConfigError listing the valid ones."""
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend '{name}'; choose from {', '.join(BACKENDS)}")
    return BACKENDS[name]


def installed(package: str) -> bool:
    """True when `package` (a pip name from MODULES) is importable as a real module.

    A namespace package with no code (what the tensorrt-stubs wheel leaves behind) does not count.
    """
    for module in MODULES[package]:
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            continue
        if spec is not None and spec.origin not in (None, "namespace"):
            return True
    return False


def require(name: str) -> Backend:
    """The entry for backend `name`; ConfigError naming what to install when a package is missing."""
    entry = backend(name)
    missing = [p for p in entry.needs if not installed(p)]
    if missing:
        what = " and ".join(missing)
        verb = "is" if len(missing) == 1 else "are"
        raise ConfigError(f"backend '{name}' needs {what}, which {verb} not installed here; {entry.install}")
    return entry

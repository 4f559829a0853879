"""One table of runtime backends: what each needs installed, which precisions it runs, how it opens.

`load()`, the CLI and the engine builder all look backends up here, so a backend's name, its
install hint, its precisions and its engine are written once. Nothing here imports an optional
library or a backend's module: `require()` only asks the import system whether a package is
present, and a backend's opener is imported by name when a bundle is opened with it.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

from simokit.errors import ConfigError

if TYPE_CHECKING:
    from simokit.runtime.bundle import BundleMeta
    from simokit.runtime.engine import Engine


@dataclass(frozen=True)
class OpenOptions:
    """How a backend opens a bundle; each backend takes what applies to it.

    threads: CPU intra-op threads (None: the backend's default). precision: the graph or engine to
    run (None: FP32). cuda_graph: replay CUDA graphs (tensorrt). spin: ONNX Runtime's idle threads
    busy-wait for the next run (False lets them sleep, giving a stream's capture the cores).
    """

    threads: int | None = None
    precision: str | None = None
    cuda_graph: bool = False
    spin: bool = True


class Opener(Protocol):
    """Opens one bundle directory (neither routed nor a delta) with a backend."""

    def __call__(self, root: Path, meta: BundleMeta, opts: OpenOptions) -> Engine: ...


@dataclass(frozen=True)
class Backend:
    """A runtime backend: needed packages (by pip name), how to install them, precisions, its opener.

    `opener` is "module:function" (an `Opener`), imported only when a bundle is opened with this
    backend, so the runtime never imports a backend it does not run (the torch reference lives on
    the build side). `routes`: a routed bundle opens as a router plus one engine per domain (else
    the backend opens the bundle's own model). `deltas`: it decodes domains stored as weight deltas.
    """

    name: str
    needs: tuple[str, ...]
    install: str
    precisions: tuple[str, ...]
    summary: str
    opener: str
    routes: bool = True
    deltas: bool = False

    def open(self, root: Path, meta: BundleMeta, opts: OpenOptions | None = None) -> Engine:
        """The backend's engine on bundle `root`, through its opener."""
        module, _, function = self.opener.partition(":")
        opener = cast(Opener, getattr(importlib.import_module(module), function))
        return opener(root, meta, opts or OpenOptions())


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
            "simokit.runtime.backends.ort:open_default",
            deltas=True,
        ),
        Backend(
            "ort-tensorrt",
            ("onnxruntime",),
            "an onnxruntime-gpu build with the TensorRT execution provider (JetPack's wheel on Jetson)",
            ("fp32", "fp16", "int8-qdq"),
            "ONNX Runtime's TensorRT execution provider; engine cache inside the bundle",
            "simokit.runtime.backends.ort:open_tensorrt",
        ),
        Backend(
            "tensorrt",
            ("tensorrt", "cuda-python"),
            "pip install 'simokit[trt]' (on a Jetson: TensorRT from JetPack, then pip install cuda-python)",
            ("fp32", "fp16", "int8", "int8-qdq"),
            "native TensorRT engine (model.engine) built on the target device",
            "simokit.runtime.trt.runner:open_engine",
        ),
        Backend(
            "torch",
            ("torch",),
            "pip install 'simokit[build]'",
            ("fp32",),
            "PyTorch eager reference on the CPU (bundle's merged.safetensors)",
            "simokit.export.torch_engine:open_engine",
            routes=False,
        ),
    )
}
# What `load()` and the CLI accept: a backend, or 'auto' (ONNX Runtime, CUDA where installed).
AUTO = "auto"
CHOICES = (AUTO, *BACKENDS)


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

"""ONNX Runtime engine: CPU everywhere, CUDA where onnxruntime-gpu is installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from simokit.runtime.bundle import MODEL_FILE, BundleError, BundleMeta
from simokit.runtime.engine import Engine

PREFERRED = ("CUDAExecutionProvider", "CPUExecutionProvider")


class OrtEngine(Engine):
    """Runs a bundle's model.onnx with ONNX Runtime."""

    backend = "onnxruntime"

    def __init__(self, root: Path, meta: BundleMeta, threads: int | None = None) -> None:
        import onnxruntime as ort

        self.meta = meta
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        available = ort.get_available_providers()
        self.providers = [p for p in PREFERRED if p in available]
        try:
            self.session = ort.InferenceSession(str(root / MODEL_FILE), opts, providers=self.providers)
        except Exception as exc:  # ORT raises its own private exception types for bad graphs
            raise BundleError(
                f"{root / MODEL_FILE}: ONNX Runtime cannot load it ({str(exc).splitlines()[0]})"
            ) from None
        names = [o.name for o in self.session.get_outputs()]
        if names != list(meta.tasks):
            raise BundleError(f"{root}: graph outputs {names} differ from meta.json tasks {list(meta.tasks)}")

    def _run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        outs = self.session.run(list(self.meta.tasks), {self.meta.input.name: x})
        return dict(zip(self.meta.tasks, outs, strict=True))

    def describe(self) -> str:
        """Backend and the execution providers in use."""
        return f"onnxruntime ({', '.join(self.session.get_providers())})"

"""PyTorch reference engine: runs the bundle's merged checkpoint with the same pre/post-processing.

For checking the ONNX and TensorRT engines against the model they came from; needs the build extra.
It lives on the build side: `load(bundle, backend="torch")` reaches it through the backend table
(simokit.runtime.capabilities) by name, so the robot-side runtime never imports it. PyTorch and the
model code are imported when an engine is made, so a robot without them gets a one-line error.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from simokit.runtime.bundle import BundleError, BundleMeta, Channels, GraphIO
from simokit.runtime.capabilities import OpenOptions
from simokit.runtime.engine import Engine

CHECKPOINT_FILE = "merged.safetensors"


class TorchEngine(Engine):
    """Runs `merged.safetensors` from a bundle in PyTorch eager mode on the CPU."""

    backend = "torch"

    def __init__(self, root: Path, meta: BundleMeta) -> None:
        try:
            import torch  # noqa: F401 - fail here with a clear message, not deep inside
        except ImportError:
            raise BundleError("the torch backend needs PyTorch: pip install 'simokit[build]'") from None
        from simokit.export.onnx import ExportModule, ExportSpec
        from simokit.models.checkpoint import load_checkpoint, model_from_checkpoint

        path = root / CHECKPOINT_FILE
        if not path.is_file():
            raise BundleError(f"{root}: no {CHECKPOINT_FILE}; rebuild the bundle with `simokit build`")
        # a frame-IO bundle's reference: the numpy pre/post-processing its graph does in-graph
        self.meta = replace(meta, input=replace(meta.input, io=GraphIO.MODEL, channels=Channels.RGB))
        labels = meta.outputs.get("seg", {}).get("kind") == "labels"
        spec = ExportSpec(
            meta.tasks,
            meta.input.height,
            meta.input.width,
            meta.input.kind,
            "labels" if labels else "logits",
            mean=meta.input.mean,
            std=meta.input.std,
        )
        self.module = ExportModule(model_from_checkpoint(load_checkpoint(path)), spec).eval()

    def _run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        import torch

        with torch.no_grad():
            outs = self.module(torch.from_numpy(np.require(x, requirements=("C", "W"))))
        return {t: o.numpy() for t, o in zip(self.meta.tasks, outs, strict=True)}

    def describe(self) -> str:
        """Backend and device."""
        return "torch (CPU, eager)"


def open_engine(root: Path, meta: BundleMeta, opts: OpenOptions) -> TorchEngine:
    """The 'torch' opener: the bundle's merged checkpoint (FP32, CPU; threads, spinning: torch's own)."""
    return TorchEngine(root, meta)

"""The single-expert ONNX graph of an imported expert, compared with the source model's output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from simokit.export.single_expert import export_single_expert
from simokit.models.importers import ImportedModel
from simokit.runtime.onnx_session import session_for


def onnx_output(model: ImportedModel, x: torch.Tensor, folder: Path) -> torch.Tensor:
    """What `simokit import --onnx` writes for x's size, run by ONNX Runtime on x."""
    size = (int(x.shape[-2]), int(x.shape[-1]))
    path = folder / f"{model.format}-{model.task}-{size[0]}x{size[1]}.onnx"
    export_single_expert(model, path, size=size)
    session = session_for(path)
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy().astype(np.float32)})
    return torch.from_numpy(out)


def assert_onnx_matches(model: ImportedModel, x: torch.Tensor, reference: torch.Tensor, folder: Path) -> None:
    """The exported graph equals the source's output to 1e-4 relative to its largest magnitude."""
    out = onnx_output(model, x, folder)
    if out.shape != reference.shape and out.dim() == reference.dim() + 1:
        out = out[:, 0]  # sources that return (B, H, W) depth
    assert out.shape == reference.shape, (out.shape, reference.shape)
    error = ((out - reference).abs().max() / reference.abs().max().clamp_min(1.0)).item()
    assert error <= 1e-4, error

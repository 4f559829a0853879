"""The single-expert ONNX graph of `simokit import --onnx`: one imported expert, run as its source runs it.

Input "image": float32 (B, 3, H, W), ALREADY normalised with the source's mean and std (the graph
metadata `simokit.mean` / `simokit.std` records them; the graph does no pre-processing). One output,
named after the task, at the head's `native_size` for (H, W), holding the source's values (seg logits,
depth in the source's units, normals as the source returns them). The size is fixed: the graph is
traced at (H, W), by default the model's input size; the batch is dynamic.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import torch
from torch import Tensor, nn

from simokit.errors import ConfigError
from simokit.export.onnx import INPUT_NAME, ExportSpec, example_input, export_module
from simokit.export.verify import FP32_TOLERANCE, VerificationError
from simokit.models import DenseHead, MultiTaskModel, build_encoder, build_head, interpolate_pos_embed
from simokit.models.importers import ImportedModel


class SingleExpertModule(nn.Module):
    """Encoder + one head: normalised (B, 3, H, W) -> the head's output at its native size for (H, W).

    The module is for (H, W) only: its position table is resampled to that grid once, in eager mode.
    """

    def __init__(self, model: MultiTaskModel, task: str, size: tuple[int, int]) -> None:
        super().__init__()
        self.model = model.eval()
        self.task = task
        self.out_size = model.heads[task].native_size(*size)  # type: ignore[operator]
        encoder = model.encoder
        grid = (size[0] // encoder.patch_size, size[1] // encoder.patch_size)
        with torch.no_grad():
            encoder.fixed_pos_embed = interpolate_pos_embed(
                encoder.pos_embed, *grid, offset=encoder.config.interpolate_offset,
                antialias=encoder.config.interpolate_antialias,
            )  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        """One task's prediction, through the same feature path as the multi-task model."""
        feats = self.model.features(x)
        head = cast(DenseHead, self.model.heads[self.task])
        sites = [(i, head.cfg.norm) for i in self.model.head_layers(self.task)]
        return head([feats[s] for s in sites], self.out_size)


def expert_model(imported: ImportedModel) -> MultiTaskModel:
    """The imported expert as a one-head MultiTaskModel in eval mode (strict weight loading)."""
    if imported.head is None or not imported.task:
        raise ConfigError(
            f"the {imported.format} model is an encoder without a task head; export needs an expert"
        )
    encoder = build_encoder(imported.vit)
    encoder.load_state_dict(imported.encoder, strict=True)
    head = build_head(imported.head, imported.vit.embed_dim)
    head.load_state_dict(imported.head_state, strict=True)
    return MultiTaskModel(encoder, {imported.task: head}).eval()


@dataclass(frozen=True)
class SingleExpertExport:
    """Where the graph went, its input size, output name and shape, and the ORT-vs-torch difference."""

    path: Path
    size: tuple[int, int]
    output: str
    output_shape: tuple[int, ...]
    max_error: float


def export_single_expert(
    imported: ImportedModel, path: str | Path, size: tuple[int, int] | None = None, opset: int = 17
) -> SingleExpertExport:
    """Write the expert's single-output graph at `size` (default its input size) and check it with ORT.

    The check runs ONNX Runtime and torch on the same random normalised batch; the difference
    (absolute below 1, relative above) must stay within 1e-4.
    """
    height, width = size or imported.input_size
    model = expert_model(imported)
    task = str(imported.task)
    patch = imported.vit.patch_size
    if height % patch or width % patch:
        raise ConfigError(f"export size {height}x{width} is not a multiple of the patch size {patch}")
    spec = ExportSpec(tasks=(), height=height, width=width, opset=opset, mean=imported.mean, std=imported.std)
    module = SingleExpertModule(model, task, (height, width))
    meta = {
        "simokit.tasks": task,
        "simokit.input": "float32 NCHW, normalised: (pixel / 255 - mean) / std",
        "simokit.mean": json.dumps(list(imported.mean)),
        "simokit.std": json.dumps(list(imported.std)),
        "simokit.classes": json.dumps(list(imported.classes)),
        "simokit.import": json.dumps({"format": imported.format, **imported.details}, default=str),
    }
    export_module(module, model.encoder, spec, [task], path, meta)
    shape, error = _check(module, Path(path), spec)
    return SingleExpertExport(Path(path), (height, width), task, shape, error)


def _check(module: SingleExpertModule, path: Path, spec: ExportSpec) -> tuple[tuple[int, ...], float]:
    """ORT vs torch on one random batch: (output shape, max difference); raises beyond 1e-4."""
    from simokit.runtime.onnx_session import session_for

    x = example_input(spec, batch=2, seed=1)
    with torch.no_grad():
        ref = module(torch.from_numpy(x)).numpy()
    out = session_for(path).run(None, {INPUT_NAME: x})[0]
    if out.shape != ref.shape:
        raise VerificationError(f"{path}: ONNX output is {out.shape}, torch gives {ref.shape}")
    error = float(np.max(np.abs(out - ref) / np.maximum(np.abs(ref), 1.0)))
    if error > FP32_TOLERANCE:
        raise VerificationError(f"{path}: ONNX output differs from torch by {error:.2e} (> {FP32_TOLERANCE})")
    return tuple(out.shape), error

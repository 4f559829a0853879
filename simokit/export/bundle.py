"""Write a bundle directory atomically: model.onnx (verified), meta.json and report.md.

The bundle is assembled in a temporary sibling directory and renamed into place only after the
export has passed verification, so an interrupted or failed build never leaves a half bundle.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

import simokit
from simokit.export.onnx import INPUT_NAME, ExportSpec, export_onnx
from simokit.export.verify import verify_onnx
from simokit.models import MultiTaskModel
from simokit.runtime.bundle import META_FILE, MODEL_FILE, BundleMeta, InputSpec
from simokit.runtime.engine import normalize_nchw


def output_specs(model: MultiTaskModel, spec: ExportSpec) -> dict[str, dict[str, Any]]:
    """dtype, shape (B = batch) and kind of every output of the exported graph."""
    out: dict[str, dict[str, Any]] = {}
    for task in spec.tasks:
        channels = model.heads[task].cfg.out_channels  # type: ignore[union-attr]
        if task == "seg" and spec.seg_output == "labels":
            out[task] = {"dtype": "int32", "shape": ["B", spec.height, spec.width], "kind": "labels"}
        else:
            kind = {"seg": "logits", "depth": "metres", "normal": "unit_vectors"}.get(task, "values")
            out[task] = {"dtype": "float32", "shape": ["B", channels, spec.height, spec.width], "kind": kind}
    return out


def write_bundle(
    out: str | Path,
    model: MultiTaskModel,
    spec: ExportSpec,
    verify_images: np.ndarray,
    classes: tuple[str, ...] = (),
    palette: np.ndarray | None = None,
    extra: dict[str, Any] | None = None,
    files: dict[str, Path] | None = None,
) -> Path:
    """Export, verify on `verify_images` (uint8 (N, H, W, 3) RGB) and publish the bundle at `out`.

    `files` are copied into the bundle under the given names (reports, plots).
    """
    import onnx

    final = Path(out)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        export_onnx(model, spec, tmp / MODEL_FILE)
        inputs = _layout(verify_images, spec)
        report = verify_onnx(model, spec, tmp / MODEL_FILE, inputs)
        meta = BundleMeta(
            tasks=spec.tasks,
            input=InputSpec(INPUT_NAME, spec.input_kind, spec.height, spec.width, spec.mean, spec.std),
            outputs=output_specs(model, spec),
            classes=classes,
            palette=tuple(
                (int(c[0]), int(c[1]), int(c[2])) for c in (palette if palette is not None else [])
            ),
            extra={
                "verification": report.to_dict(),
                "versions": {"simokit": simokit.__version__, "onnx": onnx.__version__, **_runtime_versions()},
                **(extra or {}),
            },
        )
        (tmp / META_FILE).write_text(meta.to_json())
        for name, src in (files or {}).items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, tmp / name)
        (tmp / "report.md").write_text(
            f"# Bundle report\n\n## Verification (torch vs ONNX Runtime)\n\n{report.table()}\n"
        )
        _publish(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return final


def _layout(images: np.ndarray, spec: ExportSpec) -> np.ndarray:
    if spec.input_kind == "uint8":
        return np.ascontiguousarray(images)
    return normalize_nchw(images, spec.mean, spec.std)


def _publish(tmp: Path, final: Path) -> None:
    # Replace an old bundle with at most a moment where neither name is complete on disk.
    old = final.with_name(f".{final.name}.old")
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    if old.exists():
        shutil.rmtree(old)


def _runtime_versions() -> dict[str, str]:
    import onnxruntime
    import torch

    return {"onnxruntime": onnxruntime.__version__, "torch": torch.__version__}

"""Write a bundle directory atomically: model.onnx (verified), meta.json and report.md.

The bundle is assembled in a temporary sibling directory and renamed into place only after the
export has passed verification, so an interrupted or failed build never leaves a half bundle.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

import simokit
from simokit.cache import atomic_path, staged_dir
from simokit.export.fp16 import convert_fp16
from simokit.export.frame_io import label_dtype
from simokit.export.onnx import INPUT_NAME, ExportSpec, export_onnx, frame_graph
from simokit.export.verify import (
    FP16_LABEL_AGREEMENT,
    FP16_TOLERANCE,
    FP32_TOLERANCE,
    LABEL_AGREEMENT,
    VerifyReport,
    verify_onnx,
)
from simokit.models import MultiTaskModel
from simokit.runtime.bundle import FP16_FILE, META_FILE, MODEL_FILE, BundleMeta, Channels, GraphIO, InputSpec
from simokit.runtime.engine import normalize_nchw
from simokit.runtime.manifest import record_files
from simokit.tasks.spec import OutputKind, output_kind


def output_specs(model: MultiTaskModel, spec: ExportSpec) -> dict[str, dict[str, Any]]:
    """dtype, shape (B = batch; H, W when the graph takes any size) and kind of every output.

    Frame IO: H, W are the frame's size ("input"), else the fixed output size; logits stay at the
    model's size; labels are uint8 up to 256 classes, else int32 (export.frame_io.label_dtype).
    """
    out: dict[str, dict[str, Any]] = {}
    model_hw: list[int | str] = ["H", "W"] if spec.dynamic_hw else [spec.height, spec.width]
    frame = spec.io == GraphIO.FRAME.value
    hw = _frame_output_hw(spec) if frame else model_hw
    for task in spec.tasks:
        channels = model.heads[task].cfg.out_channels  # type: ignore[union-attr]
        kind = output_kind(task, spec.seg_output)
        if kind is OutputKind.LABELS:
            dtype = label_dtype(int(channels)) if frame else "int32"  # type: ignore[arg-type]
            out[task] = {"dtype": dtype, "shape": ["B", *hw], "kind": kind.value}
        else:
            at = model_hw if kind is OutputKind.LOGITS else hw
            out[task] = {"dtype": "float32", "shape": ["B", channels, *at], "kind": kind.value}
    return out


def _frame_output_hw(spec: ExportSpec) -> list[int | str]:
    from simokit.export.frame_io import parse_output_size

    size = parse_output_size(spec.output_size)
    if size == "input":
        return ["H", "W"]
    return [spec.height, spec.width] if size == "model" else list(size)


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
    with staged_dir(final) as tmp:
        reports, graphs = export_graphs(model, spec, tmp, verify_images)
        report = reports[0][1]
        meta = BundleMeta(
            tasks=spec.tasks,
            input=_input_spec(spec),
            outputs=output_specs(model, spec),
            classes=classes,
            palette=tuple(
                (int(c[0]), int(c[1]), int(c[2])) for c in (palette if palette is not None else [])
            ),
            extra={
                "verification": report.to_dict(),
                "verifications": [{"graph": name, **r.to_dict()} for name, r in reports],
                "graphs": graphs,
                "versions": {"simokit": simokit.__version__, "onnx": onnx.__version__, **_runtime_versions()},
                **(extra or {}),
            },
        )
        (tmp / META_FILE).write_text(meta.to_json())
        for name, src in (files or {}).items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, tmp / name)
        # a report.md among `files` leads; the verification follows it
        given = tmp / "report.md"
        lead = given.read_text() + "\n" if "report.md" in (files or {}) else "# Bundle report\n\n"
        given.write_text(
            lead
            + "## Verification (torch vs ONNX Runtime)\n\n"
            + "\n\n".join(f"{_title(name, r)}\n\n{r.table()}" for name, r in reports)
            + "\n"
        )
        record_files(tmp)
    return final


def _input_spec(spec: ExportSpec) -> InputSpec:
    frame = spec.io == GraphIO.FRAME.value
    return InputSpec(
        INPUT_NAME,
        spec.input_kind,
        spec.height,
        spec.width,
        spec.mean,
        spec.std,
        spec.dynamic_hw,
        GraphIO(spec.io),
        Channels(spec.channels) if frame else Channels.RGB,
    )


def export_graphs(
    model: MultiTaskModel, spec: ExportSpec, root: Path, images: np.ndarray
) -> tuple[list[tuple[str, VerifyReport]], dict[str, dict[str, Any]]]:
    """Write model.onnx (and model.fp16.onnx) into `root`, verifying each against torch; raise if off.

    A dynamic-size graph is verified at a second size too, since the trace size alone would not
    reveal a size frozen into the graph. A frame-IO graph is verified twice: its model-size graph
    as any other, then the wrapped graph on the same frames in the channel order it expects.
    """
    import onnx

    core = spec.model_size_spec()
    export_onnx(model, core, root / MODEL_FILE)
    sizes = [images]
    if spec.dynamic_hw:
        sizes.append(np.pad(images, ((0, 0), (0, 28), (0, 14), (0, 0)), mode="reflect"))
    reports = [("fp32", verify_onnx(model, core, root / MODEL_FILE, input_layout(x, core))) for x in sizes]
    props = {p.key: p.value for p in onnx.load(str(root / MODEL_FILE)).metadata_props}
    slim = json.loads(props.get("simokit.slim", "{}"))
    graphs: dict[str, dict[str, Any]] = {"fp32": {"file": MODEL_FILE, "slim": slim}}
    if spec.fp16:
        half, conversion = convert_fp16(onnx.load(str(root / MODEL_FILE)))
        with atomic_path(root / FP16_FILE) as tmp:
            onnx.save(half, str(tmp))
        for x in sizes:
            layout = input_layout(x, core)
            report = verify_onnx(
                model, core, root / FP16_FILE, layout, FP16_TOLERANCE, label_agreement=FP16_LABEL_AGREEMENT
            )
            reports.append(("fp16", report))
        graphs["fp16"] = {"file": FP16_FILE, "conversion": conversion.to_dict()}
    if core is not spec:
        reports += _frame_reports(model, spec, root, images, list(graphs))
    return reports, graphs


def _frame_reports(
    model: MultiTaskModel, spec: ExportSpec, root: Path, images: np.ndarray, precisions: list[str]
) -> list[tuple[str, VerifyReport]]:
    """Wrap each model-size graph into frame IO and verify it on the model-size frames against torch."""
    check = replace(spec.model_size_spec(), seg_output=spec.seg_output)
    frames = np.ascontiguousarray(images[..., ::-1] if spec.channels == Channels.BGR.value else images)
    at_model_size = spec.output_size in ("input", "model", f"{spec.height}x{spec.width}")
    reports = []
    for precision in precisions:
        path = root / (MODEL_FILE if precision == "fp32" else FP16_FILE)
        frame_graph(model, spec, path, path)
        if at_model_size:
            tol = (
                (FP32_TOLERANCE, LABEL_AGREEMENT)
                if precision == "fp32"
                else (FP16_TOLERANCE, FP16_LABEL_AGREEMENT)
            )
            report = verify_onnx(
                model, check, path, images, tol[0], label_agreement=tol[1], graph_inputs=frames
            )
            reports.append((f"{precision} frame IO", report))
    return reports


def _title(graph: str, report: VerifyReport) -> str:
    h, w = report.size
    return f"### {graph} at {h}x{w} ({report.images} images, tolerance {report.tolerance:g})"


def input_layout(images: np.ndarray, spec: ExportSpec) -> np.ndarray:
    """uint8 RGB frames laid out as the graph's input: as they are, or normalised NCHW float."""
    if spec.input_kind == "uint8":
        return np.ascontiguousarray(images)
    return normalize_nchw(images, spec.mean, spec.std)


def _runtime_versions() -> dict[str, str]:
    import onnxruntime
    import torch

    return {"onnxruntime": onnxruntime.__version__, "torch": torch.__version__}

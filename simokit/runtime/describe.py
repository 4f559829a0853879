"""Human-readable summary of a bundle directory or a bare ONNX file (robot side: no torch)."""

from __future__ import annotations

import json
from pathlib import Path

from simokit.runtime.bundle import MODEL_FILE, BundleError, read_meta


def describe(path: Path) -> str:
    """Tasks, input/outputs, file sizes, provenance and verification of a bundle or .onnx file."""
    if path.is_file() and path.suffix == ".onnx":
        return _describe_onnx(path)
    meta = read_meta(path)
    size = sum(f.stat().st_size for f in path.iterdir() if f.is_file()) / 1e6
    model_size = (path / MODEL_FILE).stat().st_size / 1e6
    lines = [
        f"bundle: {path}  ({size:.1f} MB, {MODEL_FILE} {model_size:.1f} MB)",
        f"tasks: {', '.join(meta.tasks)}",
        f"input: {meta.input.name} {meta.input.kind} "
        + (
            f"(B, {meta.input.height}, {meta.input.width}, 3) RGB"
            if meta.input.kind == "uint8"
            else f"(B, 3, {meta.input.height}, {meta.input.width}) normalised"
        ),
    ]
    for task, out in meta.outputs.items():
        lines.append(f"output {task}: {out['dtype']} {tuple(out['shape'])} {out.get('kind', '')}")
    if meta.classes:
        lines.append(f"classes ({len(meta.classes)}): {', '.join(meta.classes)}")
    for key in ("merge", "versions", "sources"):
        if key in meta.extra:
            lines.append(f"{key}: {json.dumps(meta.extra[key], default=str)}")
    ver = meta.extra.get("verification")
    if ver:
        errs = ", ".join(
            f"{t} max {e['max_abs']:.1e}"
            + (f" labels {100 * e['label_agreement']:.2f}%" if e.get("label_agreement") is not None else "")
            for t, e in ver["outputs"].items()
        )
        lines.append(f"verification ({ver['images']} images, tol {ver['tolerance']:g}): {errs}")
    return "\n".join(lines)


def _describe_onnx(path: Path) -> str:
    import onnxruntime as ort

    try:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises private exception types for unreadable graphs
        raise BundleError(f"{path}: not a loadable ONNX model ({str(exc).splitlines()[0]})") from None
    meta = sess.get_modelmeta().custom_metadata_map
    lines = [f"onnx: {path}  ({path.stat().st_size / 1e6:.1f} MB)"]
    lines += [f"input {i.name}: {i.type} {i.shape}" for i in sess.get_inputs()]
    lines += [f"output {o.name}: {o.type} {o.shape}" for o in sess.get_outputs()]
    lines += [f"{k}: {v}" for k, v in meta.items()]
    return "\n".join(lines)

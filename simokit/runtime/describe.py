"""Human-readable summary of a bundle directory or a bare ONNX file (robot side: no torch)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from simokit.runtime.bundle import MODEL_FILE, BundleError, BundleMeta, GraphIO, disk_bytes, read_meta
from simokit.runtime.manifest import FILES_KEY, files_line
from simokit.runtime.onnx_session import CPU, session_for


def describe(path: Path) -> str:
    """Tasks, input/outputs, file sizes, provenance and verification of a bundle or .onnx file."""
    if path.is_file() and path.suffix == ".onnx":
        return _describe_onnx(path)
    meta = read_meta(path)
    size = disk_bytes(path) / 1e6
    graph = path / MODEL_FILE
    sizes = f"{MODEL_FILE} {graph.stat().st_size / 1e6:.1f} MB" if graph.is_file() else "no single graph"
    lines = [
        f"bundle: {path}  ({size:.1f} MB, {sizes})",
        f"tasks: {', '.join(meta.tasks)}",
        f"input: {meta.input.name} {meta.input.kind} {_input_layout(meta)}",
        files_line(path, meta.extra.get(FILES_KEY)),
    ]
    for precision, graph in meta.extra.get("graphs", {}).items():
        lines.append(f"graph {precision}: {graph['file']} {_graph_note(graph)}")
    for task, out in meta.outputs.items():
        lines.append(f"output {task}: {out['dtype']} {tuple(out['shape'])} {out.get('kind', '')}")
    if meta.classes:
        lines.append(f"classes ({len(meta.classes)}): {', '.join(meta.classes)}")
    for key in ("merge", "versions", "sources"):
        if key in meta.extra:
            lines.append(f"{key}: {json.dumps(meta.extra[key], default=str)}")
    if "routing" in meta.extra:
        lines += _routing_lines(path, meta.extra["routing"])
    checks = meta.extra.get("verifications") or [dict(meta.extra.get("verification", {}), graph="fp32")]
    for ver in checks:
        if not ver.get("outputs"):
            continue
        errs = ", ".join(
            f"{t} max {e['max_abs']:.1e}"
            + (f" labels {100 * e['label_agreement']:.2f}%" if e.get("label_agreement") is not None else "")
            for t, e in ver["outputs"].items()
        )
        at = "x".join(str(v) for v in ver.get("size", ())) or "?"
        lines.append(
            f"verification {ver['graph']} at {at} ({ver['images']} images, tol {ver['tolerance']:g}): {errs}"
        )
    return "\n".join(lines)


def _routing_lines(path: Path, routing: dict[str, Any]) -> list[str]:
    """Domains, how their weights are stored, the router, and each domain's verification."""
    router = routing.get("router", {})
    weights = routing.get("weights", "full")
    how = "one base graph plus a weight delta each" if weights == "delta" else "a full graph each"
    lines = [
        f"routed over {', '.join(routing.get('domains', []))} ({how}); router: block "
        f"{router.get('block')}, {router.get('mode')} features, hysteresis margin {routing.get('margin')}"
    ]
    storage = routing.get("storage")
    if storage:
        lines.append(
            f"storage: {storage['bundle_bytes'] / 1e6:.1f} MB written; the domains' full graphs alone: "
            f"{storage['full_engine_bytes'] / 1e6:.1f} MB"
        )
    for domain, sub in routing.get("engines", {}).items():
        try:
            checks = read_meta(path / sub).extra.get("verifications", [])
        except BundleError as exc:
            lines.append(f"domain {domain}: {exc}")
            continue
        worst = [max((e["max_abs"] for e in c.get("outputs", {}).values()), default=0.0) for c in checks]
        lines.append(
            f"domain {domain}: {sub}, verified "
            + ", ".join(f"{c['graph']} (max {w:.1e})" for c, w in zip(checks, worst, strict=True))
        )
    return lines


def _graph_note(graph: dict[str, Any]) -> str:
    slim, conv = graph.get("slim") or {}, graph.get("conversion") or {}
    if slim:
        done = "simplified" if slim.get("applied") else f"not simplified ({slim.get('reason', '')})"
        return f"({done}: {slim.get('nodes_before')} -> {slim.get('nodes_after')} nodes)"
    if conv:
        return f"({conv.get('half_nodes')} FP16 nodes, FP32 kept: {', '.join(conv.get('fp32_ops', []))})"
    return ""


def _describe_onnx(path: Path) -> str:
    sess = session_for(path, providers=CPU)
    meta = sess.get_modelmeta().custom_metadata_map
    lines = [f"onnx: {path}  ({path.stat().st_size / 1e6:.1f} MB)"]
    lines += [f"input {i.name}: {i.type} {i.shape}" for i in sess.get_inputs()]
    lines += [f"output {o.name}: {o.type} {o.shape}" for o in sess.get_outputs()]
    lines += [f"{k}: {v}" for k, v in meta.items()]
    return "\n".join(lines)


def _input_layout(meta: BundleMeta) -> str:
    """The graph input's shape and channel order as a person reads it."""
    inp = meta.input
    if inp.io is GraphIO.FRAME:
        order = inp.channels.value.upper()
        return f"(B, H, W, 3) {order} frames of any size, resized in the graph to {inp.height}x{inp.width}"
    if inp.kind != "uint8":
        layout = f"(B, 3, {inp.height}, {inp.width}) normalised"
    else:
        layout = f"(B, {inp.height}, {inp.width}, 3) RGB"
    return layout + (" (any size in multiples of 14; this is the default)" if inp.dynamic_hw else "")

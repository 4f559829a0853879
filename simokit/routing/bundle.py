"""A routed bundle: one verified engine per domain, the router's feature graph and bases, one meta.json.

Layout: `domains/<name>/` is a complete bundle per domain (model.onnx, meta.json, report.md);
`router.onnx` computes the router's features from the same input as the engines (the base
encoder's first blocks; with frame IO from the camera frame, resized inside the graph as the
engines do); `router.npz` holds the SVD bases. The top-level `model.onnx` is the first domain's
graph, so tools that know nothing of routing still open the bundle; meta.json's `routing` section
is what simokit.runtime.load uses to route. Published atomically like every bundle.

With deltas (`routing.delta`), the domains' weights live in one base graph instead: `base.onnx`
with `base.onnx.data` and `base.json`, `domains/<name>/delta.npz` per domain (no model.onnx there
or at the top), and `router.onnx` reading its weights from `base.onnx.data` (simokit.routing.delta_encode).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from simokit.cache import atomic_path, staged_dir
from simokit.errors import ConfigError
from simokit.export.bundle import input_layout, write_bundle
from simokit.export.onnx import ExportSpec, InputAdapter, export_module, export_onnx
from simokit.export.verify import VerifyReport, verify_onnx
from simokit.models import DinoVisionTransformer, MultiTaskModel
from simokit.routing.fit import RouterFeatures
from simokit.runtime.backends.ort import OrtEngine
from simokit.runtime.bundle import META_FILE, MODEL_FILE, Channels, GraphIO, disk_bytes, read_meta
from simokit.runtime.delta_decode import DELTA_FILE
from simokit.runtime.manifest import FILES_KEY, record_files
from simokit.runtime.router import SubspaceRouter

ROUTER_GRAPH = "router.onnx"
ROUTER_BASES = "router.npz"
ROUTER_OUTPUT = "features"


def export_router(
    encoder: DinoVisionTransformer, router: SubspaceRouter, spec: ExportSpec, path: Path
) -> Path:
    """The router's feature extractor as ONNX, taking the engines' input (frame IO: camera frames)."""
    core = spec.model_size_spec()
    module = nn.Sequential(InputAdapter(core), RouterFeatures(encoder, router.block, router.mode))
    meta = {"simokit.router": f"block {router.block}, {router.mode}"}
    export_module(module, encoder, core, [ROUTER_OUTPUT], path, meta)
    if core is not spec:  # the engines resize the frames themselves: so does the router, the same way
        import onnx

        from simokit.export.frame_io import wrap_frame_input

        graph = wrap_frame_input(
            onnx.load(str(path)), (spec.height, spec.width), spec.channels == Channels.BGR.value
        )
        with atomic_path(Path(path)) as tmp:
            onnx.save(graph, str(tmp))
    return Path(path)


def write_routed_bundle(
    out: str | Path,
    engines: dict[str, MultiTaskModel],
    router: SubspaceRouter,
    base: DinoVisionTransformer,
    spec: ExportSpec,
    verify_images: dict[str, np.ndarray],
    extra: dict[str, Any],
    write_kwargs: dict[str, Any] | None = None,
    deltas: bool = False,
    rank_hint: int | None = None,
) -> Path:
    """Export and verify every domain's engine, add the router, publish at `out`.

    With `deltas` the domains are stored as weight deltas of one base graph (simokit.routing.delta_encode)
    and each is verified again as the robot will open it: base graph + decoded delta.
    """
    if deltas and spec.fp16:
        raise ConfigError("routing.delta stores fp32 graphs only; build without --fp16")
    final = Path(out)
    with staged_dir(final) as tmp:
        full = tmp / ".full" if deltas else tmp / "domains"
        for domain, model in engines.items():
            write_bundle(full / domain, model, spec, verify_images[domain], **(write_kwargs or {}))
        first = full / router.domains[0]
        storage: dict[str, Any] = {"full_engine_bytes": sum(disk_bytes(full / d) for d in router.domains)}
        if deltas:
            storage.update(
                _write_deltas(tmp, full, engines, base, spec, verify_images, router.domains, rank_hint)
            )
        else:
            _link_default_graph(first, tmp)
        export_router(base, router, spec, tmp / ROUTER_GRAPH)
        if deltas:  # the router reads base-encoder weights: take them from the base's data file
            _share_router_weights(tmp, verify_images[router.domains[0]], spec)
        router.save(tmp / ROUTER_BASES)
        meta = read_meta(first)
        if deltas:  # no model.onnx at the top: the domains' graphs exist only as base + delta
            meta.extra["graphs"] = {}
        routing = _routing_section(router, deltas, extra)
        if deltas:
            shutil.rmtree(full)
        storage["bundle_bytes"] = disk_bytes(tmp)
        routing["storage"] = storage
        meta.extra["routing"] = routing
        (tmp / META_FILE).write_text(meta.to_json())
        record_files(tmp)
    return final


def _link_default_graph(first: Path, tmp: Path) -> None:
    """Put the first domain's model.onnx at the bundle's top, where routing-unaware tools look."""
    try:  # a hard link costs no disk space
        os.link(first / MODEL_FILE, tmp / MODEL_FILE)
    except OSError:
        shutil.copyfile(first / MODEL_FILE, tmp / MODEL_FILE)


def _routing_section(router: SubspaceRouter, deltas: bool, extra: dict[str, Any]) -> dict[str, Any]:
    """meta.json's `routing` section without its storage sizes: domains, engines, router files."""
    return {
        "domains": list(router.domains),
        "engines": {d: f"domains/{d}" for d in router.domains},
        "weights": "delta" if deltas else "full",
        "router": {
            "graph": ROUTER_GRAPH,
            "bases": ROUTER_BASES,
            "block": router.block,
            "mode": router.mode,
        },
        **extra,
    }


def _write_deltas(
    tmp: Path,
    full: Path,
    engines: dict[str, MultiTaskModel],
    base: DinoVisionTransformer,
    spec: ExportSpec,
    verify_images: dict[str, np.ndarray],
    domains: tuple[str, ...],
    rank_hint: int | None,
) -> dict[str, Any]:
    """base.onnx (+ data, index) from the base encoder; per domain delta.npz, meta.json, report.md."""
    import onnx

    from simokit.routing.delta_encode import encode_domain, save_delta, write_base
    from simokit.runtime.delta_decode import BASE_DATA, BASE_GRAPH, BASE_INDEX, domain_initializers

    heads = engines[domains[0]].heads  # any heads: the base graph only carries the shared weights
    template = export_onnx(MultiTaskModel(base, dict(heads)), spec, full / "base-template.onnx")
    base_model = onnx.load(str(template))
    index = write_base(base_model, tmp, BASE_GRAPH)
    files = (BASE_GRAPH, BASE_DATA, BASE_INDEX)
    out: dict[str, Any] = {"base_bytes": sum(disk_bytes(tmp / f) for f in files), "domains": {}}
    for domain in domains:
        folder = tmp / "domains" / domain
        folder.mkdir(parents=True)
        encoded = encode_domain(
            base_model, onnx.load(str(full / domain / MODEL_FILE)), set(index["tensors"]), rank_hint
        )
        save_delta(encoded, folder / DELTA_FILE)
        meta = read_meta(full / domain)
        meta.extra.pop(FILES_KEY, None)  # the full graph's table; the routed bundle's lists the deltas
        meta.extra["delta"] = {"base": f"../../{BASE_GRAPH}", "encodings": encoded["counts"]}
        # the engine, not only its session: it owns the decoded weights ORT reads in place
        engine = OrtEngine(
            folder, meta, graph=f"../../{BASE_GRAPH}", initializers=domain_initializers(tmp, folder)
        )
        report = _verify_delta(engines[domain], spec, verify_images[domain], tmp / BASE_GRAPH, engine.session)
        del engine
        text = (full / domain / "report.md").read_text()
        if report is not None:
            meta.extra["verifications"].append({"graph": "fp32, base + delta", **report.to_dict()})
            text += f"\n### base graph + this domain's delta ({report.images} images)\n\n{report.table()}\n"
        (folder / META_FILE).write_text(meta.to_json())
        (folder / "report.md").write_text(text)
        out["domains"][domain] = {
            "delta_bytes": disk_bytes(folder / DELTA_FILE),
            "encodings": encoded["counts"],
        }
    return out


def _verify_delta(
    model: MultiTaskModel, spec: ExportSpec, images: np.ndarray, graph: Path, session: Any
) -> VerifyReport | None:
    """Base graph + delta (the robot's `session`) against torch on `images` (uint8 RGB, model size).

    A frame-IO graph gets the frames in its channel order; with outputs fixed at another size than
    the model's there is no torch reference to compare with (each decoded weight was checked)."""
    if spec.io != GraphIO.FRAME.value:
        return verify_onnx(model, spec, graph, input_layout(images, spec), session=session)
    if spec.output_size not in ("input", "model", f"{spec.height}x{spec.width}"):
        return None
    frames = images[..., ::-1] if spec.channels == Channels.BGR.value else images
    check = replace(spec.model_size_spec(), seg_output=spec.seg_output)
    return verify_onnx(
        model, check, graph, images, session=session, graph_inputs=np.ascontiguousarray(frames)
    )


def _share_router_weights(tmp: Path, images: np.ndarray, spec: ExportSpec) -> None:
    """Point router.onnx's weights at base.onnx.data; its features must not change at all."""
    import json

    from simokit.routing.delta_encode import DeltaError, share_base_weights
    from simokit.runtime.delta_decode import BASE_INDEX
    from simokit.runtime.onnx_session import CPU, session_for

    x = input_layout(images, spec)

    def features() -> np.ndarray:
        sess = session_for(tmp / ROUTER_GRAPH, providers=CPU)
        return np.asarray(sess.run(None, {sess.get_inputs()[0].name: x})[0])

    before = features()
    share_base_weights(tmp / ROUTER_GRAPH, tmp, json.loads((tmp / BASE_INDEX).read_text()))
    if not np.array_equal(before, features()):
        raise DeltaError(f"{tmp / ROUTER_GRAPH}: router features changed when its weights moved to the base")

"""`load()`: a bundle directory or a triton:// URL in, the Engine that runs it out (no torch here).

Bundle kinds come first: a triton:// URL opens a served bundle, a routed bundle opens as a router
plus one engine per domain, a domain stored as a weight delta opens as the base graph with its
weights decoded in. Anything else opens with its backend's opener from the one backend table,
simokit.runtime.capabilities.
"""

from __future__ import annotations

from pathlib import Path

from simokit.errors import ConfigError
from simokit.runtime.backends.triton import is_triton_url, open_url
from simokit.runtime.bundle import BundleError, BundleMeta, is_delta, read_meta
from simokit.runtime.capabilities import AUTO, BACKENDS, CHOICES, Backend, OpenOptions
from simokit.runtime.engine import Engine


def load(
    path: str | Path,
    backend: str = AUTO,
    threads: int | None = None,
    precision: str | None = None,
    cuda_graph: bool = False,
    spin: bool = True,
) -> Engine:
    """Open a bundle with `backend` (table: simokit.runtime.capabilities).

    'auto' = ONNX Runtime (CUDA if present); 'tensorrt' = the bundle's model.engine (build it on
    the device with `simokit build-engine`); 'ort-tensorrt' = ONNX Runtime's TensorRT provider;
    'torch' = the reference. `precision` (e.g. 'fp16') must be one the backend runs; for
    'tensorrt' it must match the engine. `cuda_graph` replays CUDA graphs (tensorrt only).
    `spin=False` lets ONNX Runtime's idle threads sleep instead of busy-waiting for the next run:
    a little slower alone (~5% on ViT-S), but a stream's capture and decoding get the cores back.
    A 'triton://HOST:PORT/MODEL' (or 'triton+grpc://...') path opens a served bundle instead.
    A routed bundle (several domain engines, see simokit.routing.bundle) opens as a RoutedEngine.
    """
    if is_triton_url(path):
        return open_url(str(path), backend)
    if backend not in CHOICES:
        raise ConfigError(f"unknown backend '{backend}'; choose from {', '.join(CHOICES)}")
    entry = BACKENDS["onnxruntime" if backend == AUTO else backend]
    if precision is not None and precision not in entry.precisions:
        raise ConfigError(f"backend '{backend}' runs {', '.join(entry.precisions)}, not '{precision}'")
    meta = read_meta(path)
    if is_delta(meta):  # weight deltas decode into ONNX Runtime only: say so now, not at the first frame
        _check_delta_backend(Path(path), entry, backend, precision)
    if "routing" in meta.extra and entry.routes:
        from simokit.runtime.routed import RoutedEngine

        def open_engine(sub: Path) -> Engine:
            return load(sub, backend, threads, precision, cuda_graph, spin)

        return RoutedEngine(Path(path), meta, open_engine, threads)
    opts = OpenOptions(threads, precision, cuda_graph, spin)
    if is_delta(meta):  # a domain stored as base graph + weight delta
        return _open_delta(Path(path), meta, opts)
    return entry.open(Path(path), meta, opts)


def _check_delta_backend(path: Path, entry: Backend, backend: str, precision: str | None) -> None:
    if not entry.deltas or (precision or "fp32") != "fp32":
        raise BundleError(
            f"{path}: domains stored as weight deltas run on onnxruntime in fp32 only, not {backend} "
            f"{precision or 'fp32'}; rebuild with routing.delta: none for TensorRT or other precisions"
        )


def _open_delta(path: Path, meta: BundleMeta, opts: OpenOptions) -> Engine:
    """A domain stored as a weight delta: the base graph with the domain's weights decoded in."""
    from simokit.runtime.backends.ort import OrtEngine
    from simokit.runtime.delta_decode import domain_initializers

    base = meta.extra["delta"]["base"]  # the base graph, relative to this domain's folder
    initializers = domain_initializers((path / base).parent, path)
    return OrtEngine(path, meta, threads=opts.threads, graph=base, initializers=initializers, spin=opts.spin)

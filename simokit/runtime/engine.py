"""The Engine every backend implements, and `load()` which picks one for a bundle (no torch here).

An engine takes camera frames as OpenCV delivers them (uint8 HxWx3 BGR, one image or a batch),
resizes them to the model's input size, runs the graph and maps each output back to the frames'
resolution: {task: (B, ...) array}, without the batch axis when one image went in.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from simokit.errors import ConfigError, ShapeError
from simokit.runtime.bundle import GRAPH_FILES, HOW_TO_ADD, BundleError, BundleMeta, is_delta, read_meta
from simokit.runtime.capabilities import BACKENDS as CAPABILITIES

BACKENDS = ("auto", *CAPABILITIES)


class Engine(ABC):
    """Inference on a bundle: pre-processing, the graph, post-processing."""

    meta: BundleMeta
    backend: str

    @property
    def tasks(self) -> tuple[str, ...]:
        """The tasks this engine predicts, in output order."""
        return self.meta.tasks

    def infer(self, images: np.ndarray, bgr: bool = True, resize_back: bool = True) -> dict[str, np.ndarray]:
        """uint8 (H, W, 3) or (B, H, W, 3) frames -> {task: output}; BGR unless bgr=False."""
        batch, single = _as_batch(images)
        size = batch.shape[1:3]
        x = self._prepare(batch[..., ::-1] if bgr else batch)
        raw = self._run(x)
        out = {t: _resize_output(t, v, size) if resize_back else v for t, v in raw.items()}
        return {t: v[0] for t, v in out.items()} if single else out

    def _prepare(self, rgb: np.ndarray) -> np.ndarray:
        spec = self.meta.input
        resized = _resize_batch(rgb, (spec.height, spec.width))
        if spec.kind == "uint8":
            return np.ascontiguousarray(resized)
        return normalize_nchw(resized, spec.mean, spec.std)

    @abstractmethod
    def _run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Run the graph on a prepared batch."""

    @abstractmethod
    def describe(self) -> str:
        """One line: backend, device and providers."""


def load(
    path: str | Path,
    backend: str = "auto",
    threads: int | None = None,
    precision: str | None = None,
    cuda_graph: bool = False,
) -> Engine:
    """Open a bundle with `backend` (table: simokit.runtime.capabilities).

    'auto' = ONNX Runtime (CUDA if present); 'tensorrt' = the bundle's model.engine (build it on
    the device with `simokit build-engine`); 'ort-tensorrt' = ONNX Runtime's TensorRT provider;
    'torch' = the reference. `precision` (e.g. 'fp16') must be one the backend runs; for
    'tensorrt' it must match the engine. `cuda_graph` replays CUDA graphs (tensorrt only).
    A 'triton://HOST:PORT/MODEL' (or 'triton+grpc://...') path opens a served bundle instead.
    A routed bundle (several domain engines, see simokit.routing.bundle) opens as a RoutedEngine.
    """
    if str(path).startswith(("triton:/", "triton+http:/", "triton+grpc:/")):  # Path() keeps one '/'
        from simokit.runtime.backends.triton import open_url

        return open_url(str(path), backend)
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend '{backend}'; choose from {', '.join(BACKENDS)}")
    allowed = CAPABILITIES["onnxruntime" if backend == "auto" else backend].precisions
    if precision is not None and precision not in allowed:
        raise ConfigError(f"backend '{backend}' runs {', '.join(allowed)}, not '{precision}'")
    meta = read_meta(path)
    if is_delta(meta):  # weight deltas decode into ONNX Runtime only: say so now, not at the first frame
        _check_delta_backend(Path(path), backend, precision)
    if "routing" in meta.extra and backend != "torch":
        from simokit.runtime.routed import RoutedEngine

        def open_engine(sub: Path) -> Engine:
            return load(sub, backend, threads, precision, cuda_graph)

        return RoutedEngine(Path(path), meta, open_engine, threads)
    if is_delta(meta):  # a domain stored as base graph + weight delta
        return _open_delta(Path(path), meta, threads)
    if backend == "torch":
        from simokit.runtime.backends.torch import TorchEngine

        return TorchEngine(Path(path), meta)
    if backend == "tensorrt":
        from simokit.runtime.trt.runner import TrtEngine

        return TrtEngine(Path(path), meta, cuda_graph=cuda_graph, precision=precision)
    from simokit.runtime.backends.ort import OrtEngine

    if backend == "ort-tensorrt":  # TensorRT builds its own FP16/INT8 engine from the FP32 graph
        return OrtEngine(Path(path), meta, threads=threads, route="tensorrt", fp16=precision == "fp16")
    graph = GRAPH_FILES[precision or "fp32"]
    if not (Path(path) / graph).is_file():
        raise BundleError(
            f"{path}: no {graph} for precision '{precision}'; add it with {HOW_TO_ADD[precision or 'fp32']}"
        )
    return OrtEngine(Path(path), meta, threads=threads, graph=graph)


def _check_delta_backend(path: Path, backend: str, precision: str | None) -> None:
    if backend not in ("auto", "onnxruntime") or (precision or "fp32") != "fp32":
        raise BundleError(
            f"{path}: domains stored as weight deltas run on onnxruntime in fp32 only, not {backend} "
            f"{precision or 'fp32'}; rebuild with routing.delta: none for TensorRT or other precisions"
        )


def _open_delta(path: Path, meta: BundleMeta, threads: int | None) -> Engine:
    """A domain stored as a weight delta: the base graph with the domain's weights decoded in."""
    from simokit.runtime.backends.ort import OrtEngine
    from simokit.runtime.delta_decode import domain_initializers

    base = meta.extra["delta"]["base"]  # the base graph, relative to this domain's folder
    initializers = domain_initializers((path / base).parent, path)
    return OrtEngine(path, meta, threads=threads, graph=base, initializers=initializers)


def normalize_nchw(rgb: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """uint8 RGB (B, H, W, 3) -> float32 (B, 3, H, W) normalised with mean/std given on the 0..1 scale."""
    scale = 1.0 / (np.asarray(std, np.float32) * 255.0)
    x = (rgb.astype(np.float32) - np.asarray(mean, np.float32) * 255.0) * scale
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def _as_batch(images: np.ndarray) -> tuple[np.ndarray, bool]:
    arr = np.asarray(images)
    if arr.dtype != np.uint8:
        raise ShapeError(f"frames must be uint8 images as OpenCV reads them; got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[-1] == 3:
        return arr[None], True
    if arr.ndim == 4 and arr.shape[-1] == 3 and arr.shape[0] > 0:
        return arr, False
    raise ShapeError(f"frames must be (H, W, 3) or (B, H, W, 3) uint8; got shape {arr.shape}")


def _resize_batch(batch: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if batch.shape[1:3] == size:
        return batch
    cv2 = _cv2(f"frames are {batch.shape[2]}x{batch.shape[1]} but the model takes {size[1]}x{size[0]}")
    return np.stack([cv2.resize(f, (size[1], size[0]), interpolation=cv2.INTER_AREA) for f in batch])


def _resize_output(task: str, value: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    spatial = value.shape[-2:]
    if tuple(spatial) == tuple(size):
        return value
    cv2 = _cv2("outputs must be mapped back to the frame size")
    h, w = size
    if value.ndim == 3:  # class labels: nearest neighbour keeps them valid ids
        return np.stack([cv2.resize(v, (w, h), interpolation=cv2.INTER_NEAREST) for v in value])
    out = np.stack(
        [np.stack([cv2.resize(c, (w, h), interpolation=cv2.INTER_LINEAR) for c in v]) for v in value]
    )
    if task == "normal":
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-6)
    return out


def _cv2(why: str):  # type: ignore[no-untyped-def]  # OpenCV ships no type hints
    try:
        import cv2
    except ImportError:
        raise ShapeError(
            f"{why}; install OpenCV (pip install 'simokit[cv]', or JetPack's) or resize yourself"
        ) from None
    return cv2

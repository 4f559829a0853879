"""The Engine every backend implements: frame pre-processing, the graph, post-processing (no torch).

An engine takes camera frames as OpenCV delivers them (uint8 HxWx3 BGR, one image or a batch;
mono8 (H, W) / (H, W, 1) frames are expanded to three channels, RGBA/BGRA drop alpha), resizes
them to the model's input size, runs the graph and maps each output back to the frames'
resolution: {task: (B, ...) array}, without the batch axis when one image went in. A frame-IO
bundle's graph does the resizing, channel flip, argmax and upsampling itself: the frames are
handed over as they are (no copy for a C-contiguous uint8 frame in the graph's channel order).
`simokit.runtime.load` (runtime/loading.py) opens the right engine for a bundle.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from simokit.errors import ShapeError
from simokit.runtime.bundle import BundleMeta, Channels, GraphIO
from simokit.tasks.spec import TASKS, Resize, resize_rule


class Engine(ABC):
    """Inference on a bundle: pre-processing, the graph, post-processing."""

    meta: BundleMeta
    backend: str

    @property
    def tasks(self) -> tuple[str, ...]:
        """The tasks this engine predicts, in output order."""
        return self.meta.tasks

    def infer(self, images: np.ndarray, bgr: bool = True, resize_back: bool = True) -> dict[str, np.ndarray]:
        """uint8 (H, W, 3) or (B, H, W, 3) frames -> {task: output}; BGR unless bgr=False.

        resize_back=False leaves outputs at the model's size; a frame-IO graph ignores it (its
        outputs have the size it was built for, see meta.json outputs).
        """
        batch, single = _as_batch(images)
        if self.meta.input.io is GraphIO.FRAME:
            if bgr != (self.meta.input.channels is Channels.BGR):
                batch = batch[..., ::-1]
            raw = self._run(np.ascontiguousarray(batch))
            return {t: v[0] for t, v in raw.items()} if single else raw
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


def normalize_nchw(rgb: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """uint8 RGB (B, H, W, 3) -> float32 (B, 3, H, W) normalised with mean/std given on the 0..1 scale."""
    scale = 1.0 / (np.asarray(std, np.float32) * 255.0)
    x = (rgb.astype(np.float32) - np.asarray(mean, np.float32) * 255.0) * scale
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


class EmptyFrameError(ShapeError):
    """A frame with no pixels (a camera that returned nothing, a failed decode)."""


class MixedFrameSizesError(ShapeError):
    """A list of frames of different sizes, which cannot form one batch."""


def _as_batch(images: np.ndarray | list[np.ndarray]) -> tuple[np.ndarray, bool]:
    if isinstance(images, (list, tuple)):
        sizes = {np.shape(f)[:2] for f in images}
        if len(sizes) > 1:
            raise MixedFrameSizesError(
                f"frames of different sizes {sorted(sizes)} cannot form one batch; infer them one by one"
            )
    arr = np.asarray(images)
    if arr.dtype != np.uint8:
        raise ShapeError(f"frames must be uint8 images as OpenCV reads them; got {arr.dtype}")
    if arr.size == 0:
        raise EmptyFrameError(f"empty frame (shape {arr.shape}): the source delivered no pixels")
    single = arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (1, 3, 4))
    if arr.ndim == 2:
        arr = arr[..., None]
    batch = arr[None] if single else arr
    if batch.ndim == 4 and batch.shape[-1] == 1:  # mono8: grey in every channel
        batch = np.repeat(batch, 3, axis=-1)
    elif batch.ndim == 4 and batch.shape[-1] == 4:  # RGBA / BGRA: alpha dropped
        batch = batch[..., :3]
    if batch.ndim == 4 and batch.shape[-1] == 3:
        return batch, single
    raise ShapeError(
        f"frames must be (H, W), (H, W, 1|3|4) or a batch (B, H, W, 1|3|4) of uint8; got shape {arr.shape}"
    )


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
    # (B, H, W) outputs are label maps; a task the table lacks (a newer bundle) is resized linearly
    labels = value.ndim == 3
    rule = resize_rule(task, labels) if labels or task in TASKS else Resize.LINEAR
    if rule == Resize.NEAREST:
        return np.stack([cv2.resize(v, (w, h), interpolation=cv2.INTER_NEAREST) for v in value])
    out = np.stack(
        [np.stack([cv2.resize(c, (w, h), interpolation=cv2.INTER_LINEAR) for c in v]) for v in value]
    )
    if rule == Resize.LINEAR_UNIT:
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

"""The user's frames as model-size images: read evenly from a source, checked, resized, split, hashed.

One reader stack with `simokit calib` and `simokit run` (simokit.calib.frames.open_frames over the
runtime's sources): an image folder (recursive), a video file, a ROS 2 bag's image topic, or a camera
URI (its first N frames). Resize rule: scale so the frame covers the model input (aspect kept), then
centre-crop; a frame smaller than the input is refused rather than upscaled.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simokit.calib.frames import SCENES, open_frames
from simokit.data import SceneArrays
from simokit.errors import DataError

RESIZE_RULE = "scaled to cover the model input (aspect kept, area filter), then centre-cropped"


@dataclass(frozen=True)
class FrameSet:
    """Sampled frames at the model size: `fit` (TAP, re-alignment) and `held` (the report), unlabelled."""

    fit: SceneArrays
    held: SceneArrays
    description: str
    frame_size: tuple[int, int]  # (height, width) of the source frames
    key: str  # SHA-256 over every model-size image and the split: the cache key of this frame set

    def summary(self) -> dict[str, object]:
        """What the bundle records about its frames."""
        h, w = self.fit.image.shape[1:3]
        return {
            "source": self.description,
            "frames": len(self.fit) + len(self.held),
            "fit": len(self.fit),
            "held_out": len(self.held),
            "frame_size": list(self.frame_size),
            "model_size": [int(h), int(w)],
            "resize": RESIZE_RULE,
            "sha256": self.key,
        }


def even_indices(total: int, n: int) -> list[int]:
    """`n` indices spread evenly over `total` frames (all of them when there are fewer)."""
    if total <= n:
        return list(range(total))
    return sorted({round(i) for i in np.linspace(0, total - 1, n)})


def read_frames(
    spec: str, n: int, topic: str | None = None, progress: bool = True
) -> tuple[list[np.ndarray], str]:
    """Up to `n` uint8 RGB frames sampled evenly over `spec`, and a line saying what was read."""
    if not spec.startswith(SCENES) and not Path(spec).expanduser().exists() and not topic:
        from simokit.runtime.sources import open_source

        source = open_source(spec)
        if source.live:
            return _first_frames(source, n), f"camera {spec} (first {n} frames)"
    sampled = open_frames(spec, n, every=1, progress=progress, topic=topic)
    frames = list(sampled.frames(even_indices(len(sampled), n)))
    return frames, f"{sampled.description}, {len(frames)} sampled evenly"


def _first_frames(source: object, n: int) -> list[np.ndarray]:
    from simokit.runtime.sources import Source

    assert isinstance(source, Source)
    source.open()
    try:
        frames: list[np.ndarray] = []
        while len(frames) < n and (frame := source.read()) is not None:
            frames.append(np.ascontiguousarray(frame[..., ::-1]))
    finally:
        source.close()
    if not frames:
        raise DataError(f"camera {source.uri}: no frames read")
    return frames


def check_frames(frames: list[np.ndarray], hw: tuple[int, int], where: str) -> tuple[int, int]:
    """The frames' common (height, width); DataError in one line for none, mixed or too small."""
    if not frames:
        raise DataError(f"{where}: no frames")
    sizes = [f.shape[:2] for f in frames]
    first = sizes[0]
    other = next((i for i, s in enumerate(sizes) if s != first), None)
    if other is not None:
        raise DataError(
            f"{where}: frames of mixed sizes ({first[0]}x{first[1]} at frame 0, "
            f"{sizes[other][0]}x{sizes[other][1]} at frame {other}); give frames from one camera"
        )
    if first[0] < hw[0] or first[1] < hw[1]:
        raise DataError(
            f"{where}: frames are {first[0]}x{first[1]}, smaller than the model input {hw[0]}x{hw[1]}; "
            "give a smaller --size"
        )
    return int(first[0]), int(first[1])


def to_model_size(frame: np.ndarray, hw: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """One frame scaled to cover (h, w) with its aspect kept, then centre-cropped (RESIZE_RULE).

    `nearest` resamples a label map the same way (class ids, depth with holes, normals) instead of
    averaging, so the targets stay aligned with the image they label.
    """
    import cv2

    h, w = hw
    fh, fw = frame.shape[:2]
    scale = max(h / fh, w / fw)
    sh, sw = max(h, round(fh * scale)), max(w, round(fw * scale))
    if (sh, sw) != (fh, fw):
        mode = cv2.INTER_NEAREST if nearest else cv2.INTER_AREA
        frame = cv2.resize(frame, (sw, sh), interpolation=mode)
    top, left = (sh - h) // 2, (sw - w) // 2
    return np.ascontiguousarray(frame[top : top + h, left : left + w])


def images_only(images: np.ndarray) -> SceneArrays:
    """SceneArrays of unlabelled images (domain 0)."""
    return SceneArrays(image=images, domain=np.zeros(len(images), np.uint8))


def load_frame_set(
    spec: str, n: int, hw: tuple[int, int], topic: str | None = None, progress: bool = True
) -> FrameSet:
    """Read, check and resize `n` frames of `spec`; even-numbered ones fit, odd-numbered ones are held out."""
    frames, description = read_frames(spec, n, topic or None, progress)
    frame_size = check_frames(frames, hw, spec)
    if len(frames) < 2:
        raise DataError(f"{spec}: {len(frames)} frame; fitting and the held-out report need two or more")
    images = np.stack([to_model_size(f, hw) for f in frames])
    digest = hashlib.sha256(np.ascontiguousarray(images).tobytes())
    digest.update(f"{images.shape}/split-even-odd".encode())
    return FrameSet(
        images_only(images[0::2]), images_only(images[1::2]), description, frame_size, digest.hexdigest()
    )

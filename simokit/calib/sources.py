"""Where calibration frames come from: an image folder, a video, the embedded scenes or NYUv2.

Every source yields uint8 (H, W, 3) RGB frames by index, so the subset and pre-processing code
does not care where they came from. Indices are read in increasing order in one pass, which lets a
video be decoded sequentially instead of seeking (seeking is slow and not frame-exact).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType

import numpy as np

from simokit.errors import ConfigError, DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
SCENES = "scenes"
_KINDS = "an image folder, a video file, an NYUv2-layout folder or 'scenes[:split]'"


class FrameSource(ABC):
    """Frames by index: len() of them, read in increasing index order."""

    description: str

    @abstractmethod
    def __len__(self) -> int:
        """Number of frames available."""

    @abstractmethod
    def frames(self, indices: Sequence[int]) -> Iterator[np.ndarray]:
        """Yield uint8 (H, W, 3) RGB frames for sorted `indices`, in that order."""


class ImageFolder(FrameSource):
    """Every image file under a folder (recursively), sorted by path."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not self.paths:
            raise DataError(
                f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}) found; point --data at a folder of images"
            )
        self.description = f"image folder {root} ({len(self.paths)} images)"

    def __len__(self) -> int:
        """Number of image files found."""
        return len(self.paths)

    def frames(self, indices: Sequence[int]) -> Iterator[np.ndarray]:
        """Read and check each image (8-bit, 3 channels); yield it as RGB."""
        cv2 = _cv2()
        for i in indices:
            path = self.paths[i]
            img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if img is None:
                raise DataError(f"{path}: cannot be read as an image; remove or replace it")
            channels = 1 if img.ndim == 2 else img.shape[2]
            if channels != 3 or img.dtype != np.uint8:
                raise DataError(
                    f"{path}: {channels}-channel {img.dtype} image; calibration needs 8-bit 3-channel colour "
                    "images like the camera's (convert it or remove it)"
                )
            yield np.ascontiguousarray(img[..., ::-1])


class VideoFile(FrameSource):
    """Every `every`-th frame of a video file, decoded with OpenCV."""

    def __init__(self, path: Path, every: int = 10) -> None:
        if every < 1:
            raise ConfigError(f"--every must be at least 1, got {every}")
        self.path, self.every = path, every
        total = sum(1 for _ in self._decode(None))
        if total == 0:
            raise DataError(f"{path}: no readable video frames; is it a video file OpenCV can decode?")
        self.count = (total + every - 1) // every
        self.description = f"video {path} (1 in {every} of its {total} frames)"

    def _decode(self, wanted: set[int] | None) -> Iterator[tuple[int, np.ndarray | None]]:
        cv2 = _cv2()
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise DataError(f"{self.path}: cannot open it as a video; check the file and its codec")
        try:
            index = 0
            while cap.grab():
                keep = wanted is not None and index % self.every == 0 and index // self.every in wanted
                frame = cap.retrieve()[1] if keep else None
                yield index, frame
                index += 1
        finally:
            cap.release()

    def __len__(self) -> int:
        """Number of sampled frames (one every `every`)."""
        return self.count

    def frames(self, indices: Sequence[int]) -> Iterator[np.ndarray]:
        """Decode once from the start, yielding the wanted sampled frames as RGB."""
        wanted = set(indices)
        got = 0
        for _, frame in self._decode(wanted):
            if frame is not None:
                got += 1
                yield np.ascontiguousarray(frame[..., ::-1])
        if got != len(wanted):
            raise DataError(f"{self.path}: only {got} of {len(wanted)} frames decoded on the second pass")


class SceneSplit(FrameSource):
    """`n` images of a split of the embedded procedural benchmark (rendered once, then cached)."""

    def __init__(self, split: str, n: int, progress: bool = True) -> None:
        from simokit.data.scenes import load_scenes
        from simokit.recipe import DataConfig

        d = DataConfig()
        self.images = load_scenes(split, n, d.size, d.domains, d.seed, progress=progress).image
        self.description = f"embedded scenes, split '{split}' ({n} images at {d.size}px)"

    def __len__(self) -> int:
        """Number of rendered images."""
        return len(self.images)

    def frames(self, indices: Sequence[int]) -> Iterator[np.ndarray]:
        """Yield the rendered RGB images."""
        for i in indices:
            yield np.asarray(self.images[i])


class NYUv2Images(FrameSource):
    """The images of one split of an NYUv2-layout folder ({root}/{split}/image/N.npy)."""

    def __init__(self, root: Path, split: str) -> None:
        from simokit.data.folders import NYUv2Folder

        self.folder = NYUv2Folder(root, split)
        self.description = f"NYUv2 folder {root}, split '{split}' ({len(self.folder)} images)"

    def __len__(self) -> int:
        """Number of samples in the split."""
        return len(self.folder)

    def frames(self, indices: Sequence[int]) -> Iterator[np.ndarray]:
        """Yield each sample's image."""
        for i in indices:
            yield self.folder[i]["image"]


def nyuv2_split(path: Path) -> tuple[Path, str] | None:
    """(root, split) when `path` is an NYUv2 root (train/ test/ ...) or one split folder; else None."""
    if (path / "image").is_dir() and any((path / "image").glob("*.npy")):
        return path.parent, path.name
    splits = sorted(p.name for p in path.iterdir() if (p / "image").is_dir()) if path.is_dir() else []
    if splits:
        return path, "train" if "train" in splits else splits[0]
    return None


def open_source(spec: str, n: int, every: int = 10, progress: bool = True) -> FrameSource:
    """Open `spec`: 'scenes[:split]' (renders n), an NYUv2 folder, an image folder or a video file."""
    if spec == SCENES or spec.startswith(SCENES + ":"):
        split = spec.partition(":")[2] or "calib"
        return SceneSplit(split, n, progress)
    path = Path(spec).expanduser()
    if not path.exists():
        raise DataError(f"calibration data '{spec}' not found; give {_KINDS}")
    if path.is_file():
        return VideoFile(path, every)
    nyu = nyuv2_split(path)
    if nyu is not None:
        return NYUv2Images(*nyu)
    return ImageFolder(path)


def _cv2() -> ModuleType:
    try:
        import cv2
    except ImportError:
        raise DataError("reading images and videos needs OpenCV: pip install 'simokit[cv]'") from None
    return cv2

"""Where calibration frames come from: an image folder, a video, the embedded scenes or NYUv2.

Image folders and videos are read by the runtime's own sources (simokit.runtime.sources) and sampled
by index with simokit.runtime.sampling, as on the robot. The embedded scenes and NYUv2-layout folders
need simokit.data, so their adapters live here: Sources over images held in memory or on disk.
`open_frames` gives a SampledSource of uint8 (H, W, 3) RGB frames, whatever the kind.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from simokit.errors import DataError
from simokit.runtime.sampling import SampledSource
from simokit.runtime.sources import CaptureSource, FolderSource, Source, StreamError, open_source

SCENES = "scenes"
_KINDS = "an image folder, a video file, a ROS 2 bag (.mcap), an NYUv2-layout folder or 'scenes[:split]'"


class ArraySource(Source):
    """A finite Source over `count` RGB images got by index (delivered as BGR, like a capture)."""

    live = False

    def __init__(self, uri: str, count: int, image: Callable[[int], np.ndarray], description: str) -> None:
        self.uri, self.description = uri, description
        self._count, self._image = count, image
        self._next = 0

    def open(self) -> None:
        """Start from the first image."""
        self._next = 0

    def read(self) -> np.ndarray | None:
        """The next image as BGR, None after the last."""
        if not self.skip():
            return None
        return np.ascontiguousarray(np.asarray(self._image(self._next - 1))[..., ::-1])

    def skip(self) -> bool:
        """Move past the next image without loading it."""
        if self._next >= self._count:
            return False
        self._next += 1
        return True

    def count(self) -> int:
        """Number of images."""
        return self._count

    def close(self) -> None:
        """Nothing to release."""


class SceneSplit(ArraySource):
    """`n` images of a split of the embedded procedural benchmark (rendered once, then cached)."""

    def __init__(self, split: str, n: int, progress: bool = True) -> None:
        from simokit.data.scenes import load_scenes
        from simokit.recipe import DataConfig

        d = DataConfig()
        images = load_scenes(split, n, d.size, d.domains, d.seed, progress=progress).image
        text = f"embedded scenes, split '{split}' ({n} images at {d.size}px)"
        super().__init__(f"{SCENES}:{split}", len(images), lambda i: np.asarray(images[i]), text)


class NYUv2Images(ArraySource):
    """The images of one split of an NYUv2-layout folder ({root}/{split}/image/N.npy)."""

    def __init__(self, root: Path, split: str) -> None:
        from simokit.data.folders import NYUv2Folder

        folder = NYUv2Folder(root, split)
        text = f"NYUv2 folder {root}, split '{split}' ({len(folder)} images)"
        super().__init__(str(root / split), len(folder), lambda i: folder[i]["image"], text)


def nyuv2_split(path: Path) -> tuple[Path, str] | None:
    """(root, split) when `path` is an NYUv2 root (train/ test/ ...) or one split folder; else None."""
    if (path / "image").is_dir() and any((path / "image").glob("*.npy")):
        return path.parent, path.name
    splits = sorted(p.name for p in path.iterdir() if (p / "image").is_dir()) if path.is_dir() else []
    if splits:
        return path, "train" if "train" in splits else splits[0]
    return None


def open_frames(
    spec: str, n: int, every: int = 10, progress: bool = True, topic: str | None = None
) -> SampledSource:
    """Open `spec`: 'scenes[:split]' (renders n), an NYUv2 folder, an image folder (recursively), a
    video file or a ROS 2 bag's image `topic` (one frame in `every`), as RGB frames by index."""
    if spec == SCENES or spec.startswith(SCENES + ":"):
        scenes = SceneSplit(spec.partition(":")[2] or "calib", n, progress)
        return SampledSource(scenes, rgb=True, describe=lambda _: scenes.description)
    path = Path(spec).expanduser()
    if not path.exists():
        raise DataError(f"calibration data '{spec}' not found; give {_KINDS}")
    try:
        if path.suffix.lower() == ".mcap" or (path / "metadata.yaml").is_file():
            bag = open_source(str(path), topic=topic)
            return SampledSource(
                bag, every, rgb=True, describe=lambda t: f"bag {path} (1 in {every} of its {t} frames)"
            )
        if topic:
            raise DataError(f"--topic {topic}: only ROS 2 bags (.mcap) have topics; '{spec}' is not one")
        if path.is_file():
            video = CaptureSource(str(path), str(path), "CAP_ANY", live=False)
            return SampledSource(
                video, every, rgb=True, describe=lambda t: f"video {path} (1 in {every} of its {t} frames)"
            )
        nyu = nyuv2_split(path)
        if nyu is not None:
            images = NYUv2Images(*nyu)
            return SampledSource(images, rgb=True, describe=lambda _: images.description)
        folder = FolderSource(str(path), path, recursive=True, strict=True)
        return SampledSource(folder, rgb=True, describe=lambda t: f"image folder {path} ({t} images)")
    except StreamError as exc:  # calibration data that cannot be read is a data error, not a lost stream
        raise DataError(str(exc)) from None

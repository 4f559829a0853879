"""Real data in the common NYUv2 .npy layout: {root}/{split}/{image,label,depth,normal}/N.npy."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from simokit.data.arrays import SceneArrays
from simokit.data.labels import DOMAINS, IGNORE_LABEL
from simokit.errors import DataError

# Folder name on disk -> key in simokit's sample dicts.
_TASK_DIRS = {"label": "seg", "depth": "depth", "normal": "normal"}
_LAYOUT = "{root}/{split}/{image,label,depth,normal}/N.npy"


def _numbered(folder: Path) -> dict[int, Path]:
    """Return {N: path} for the N.npy files in `folder`, rejecting non-numeric names."""
    files: dict[int, Path] = {}
    for path in folder.glob("*.npy"):
        if not path.stem.isdigit():
            raise DataError(
                f"'{path}' is not named N.npy with an integer N; rename it or move it out of {folder}"
            )
        files[int(path.stem)] = path
    return files


def _load(path: Path) -> np.ndarray:
    """Load one .npy file, turning read errors into DataError."""
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read '{path}' as a .npy array: {exc}") from None


def _image(arr: np.ndarray, path: Path) -> np.ndarray:
    """Return (H, W, 3) uint8 from uint8 or [0, 1] float RGB."""
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise DataError(f"image '{path}' has shape {arr.shape}; expected (H, W, 3) RGB")
    if arr.dtype == np.uint8:
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        if np.nanmin(arr) < -1e-3 or np.nanmax(arr) > 1.0 + 1e-3:
            raise DataError(f"float image '{path}' has values outside [0, 1]; store uint8 or scale to [0, 1]")
        return np.round(np.clip(np.nan_to_num(arr), 0.0, 1.0) * 255.0).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer) and arr.min() >= 0 and arr.max() <= 255:
        return arr.astype(np.uint8)
    raise DataError(f"image '{path}' has dtype {arr.dtype}; expected uint8 or float in [0, 1]")


def _squeeze(arr: np.ndarray, path: Path, what: str) -> np.ndarray:
    """Return (H, W) from (H, W) or (H, W, 1)."""
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise DataError(f"{what} '{path}' has shape {arr.shape}; expected (H, W) or (H, W, 1)")
    return arr


def _label(arr: np.ndarray, path: Path) -> np.ndarray:
    """Return (H, W) uint8 class ids with -1 and 255 mapped to the ignore id 255."""
    arr = _squeeze(arr, path, "label")
    if np.issubdtype(arr.dtype, np.floating) and (
        not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr))
    ):
        raise DataError(f"label '{path}' holds non-integer values; store integer class ids")
    ids = arr.astype(np.int64)
    ids[ids == -1] = IGNORE_LABEL
    if ids.min() < 0 or ids.max() > IGNORE_LABEL:
        raise DataError(f"label '{path}' has ids outside 0..254 (with -1 or 255 as ignore)")
    return ids.astype(np.uint8)


def _depth(arr: np.ndarray, path: Path) -> np.ndarray:
    """Return (H, W) float32 metres, 0 where invalid (NaN or inf also become 0)."""
    arr = _squeeze(arr, path, "depth").astype(np.float32)
    arr[~np.isfinite(arr)] = 0.0
    if arr.min() < 0:
        raise DataError(f"depth '{path}' has negative values; expected metres with 0 marking invalid pixels")
    return arr


def _normal(arr: np.ndarray, path: Path) -> np.ndarray:
    """Return (H, W, 3) float32 normals in [-1, 1] as stored (zeros mark invalid pixels)."""
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise DataError(f"normal '{path}' has shape {arr.shape}; expected (H, W, 3)")
    return np.nan_to_num(arr.astype(np.float32))


class NYUv2Folder:
    """One split of an NYUv2-style folder; samples use render_scene's keys: image, seg, depth, normal."""

    def __init__(self, root: str | Path, split: str = "train") -> None:
        """Index {root}/{split}/image/N.npy and whichever of label/depth/normal exist, checking numbering."""
        self.root = Path(root).expanduser()
        self.split = split
        if not self.root.is_dir():
            raise DataError(f"NYUv2 root '{self.root}' does not exist; expected the layout {_LAYOUT}")
        split_dir = self.root / split
        if not split_dir.is_dir():
            found = sorted(p.name for p in self.root.iterdir() if p.is_dir())
            raise DataError(f"NYUv2 split folder '{split_dir}' does not exist; found splits {found}")
        image_dir = split_dir / "image"
        if not image_dir.is_dir():
            raise DataError(f"'{image_dir}' does not exist; expected the layout {_LAYOUT}")
        images = _numbered(image_dir)
        if not images:
            raise DataError(f"'{image_dir}' holds no N.npy files; expected the layout {_LAYOUT}")
        self.indices: list[int] = sorted(images)
        self._files: dict[str, list[Path]] = {"image": [images[i] for i in self.indices]}
        for dirname, key in _TASK_DIRS.items():
            folder = split_dir / dirname
            if not folder.is_dir():
                continue
            files = _numbered(folder)
            if set(files) != set(images):
                missing = sorted(set(images) - set(files))[:5]
                extra = sorted(set(files) - set(images))[:5]
                raise DataError(
                    f"file numbering in '{folder}' does not match '{image_dir}': "
                    f"missing {missing}, unexpected {extra}; every image N.npy needs a {dirname}/N.npy"
                )
            self._files[key] = [files[i] for i in self.indices]

    @property
    def tasks(self) -> tuple[str, ...]:
        """Return the task keys present on disk, among ("seg", "depth", "normal")."""
        return tuple(k for k in _TASK_DIRS.values() if k in self._files)

    def __len__(self) -> int:
        """Return the number of samples."""
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        """Return {"image": (H, W, 3) uint8, "seg": (H, W) uint8, "depth": (H, W), "normal": (H, W, 3)}."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"sample {i} out of range for {len(self)} samples in '{self.root / self.split}'")
        path = self._files["image"][i]
        sample = {"image": _image(_load(path), path)}
        convert = {"seg": _label, "depth": _depth, "normal": _normal}
        for key in self.tasks:
            p = self._files[key][i]
            sample[key] = convert[key](_load(p), p)
            if sample[key].shape[:2] != sample["image"].shape[:2]:
                raise DataError(
                    f"'{p}' is {sample[key].shape[:2]} but its image '{path}' is {sample['image'].shape[:2]}"
                )
        return sample

    def to_arrays(self, indices: Sequence[int] | None = None) -> SceneArrays:
        """Stack samples (all, or `indices`) into a SceneArrays; tasks missing on disk are None."""
        chosen = range(len(self)) if indices is None else indices
        samples = [self[int(i)] for i in chosen]
        if not samples:
            raise DataError(f"no samples selected from '{self.root / self.split}'")
        sizes = {s["image"].shape for s in samples}
        if len(sizes) > 1:
            raise DataError(
                f"images in '{self.root / self.split}' differ in size {sorted(sizes)}; resize them first"
            )
        stacked = {k: np.stack([s[k] for s in samples]) for k in ("image", *self.tasks)}
        domain = np.full(len(samples), DOMAINS.index("indoor"), dtype=np.uint8)
        return SceneArrays(domain=domain, **stacked)

"""A folder of images as a frame source: path order, unreadable files skipped and named once."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from simokit.errors import DataError
from simokit.runtime.source_base import Source, StreamError, require_cv2

log = logging.getLogger("simokit.runtime.sources")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class FolderSource(Source):
    """Every image in a folder, in path order (not live: nothing dropped).

    `recursive` also reads its subfolders. `strict` (calibration data) reads each file as stored and
    refuses one that cannot be read or is not 8-bit 3-channel colour, instead of skipping or converting it.
    """

    live = False

    def __init__(self, uri: str, folder: Path, recursive: bool = False, strict: bool = False) -> None:
        self.uri, self.folder, self.recursive, self.strict = uri, folder, recursive, strict
        self.files: list[Path] = []
        self.unreadable: list[Path] = []
        self.delivered = 0
        self._next = 0
        self._warned = False

    def open(self) -> None:
        """List the folder's images; an empty folder is an error."""
        found = self.folder.rglob("*") if self.recursive else self.folder.iterdir()
        self.files = sorted(p for p in found if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not self.files:
            raise StreamError(
                f"cannot open source '{self.uri}': no images ({', '.join(IMAGE_SUFFIXES)}) found; "
                "point it at a folder of images"
            )
        self._next = self.delivered = 0
        self.unreadable, self._warned = [], False

    def read(self) -> np.ndarray | None:
        """Next readable image, None after the last.

        Unreadable files are skipped and named in one warning at the end; a folder in which no
        image at all could be read raises StreamError (a run of 0 frames would look like success).
        """
        cv2 = require_cv2(f"source '{self.uri}'")
        while self._next < len(self.files):
            path = self.files[self._next]
            self._next += 1
            image = _read_strict(cv2, path) if self.strict else cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is not None:
                self.delivered += 1
                self.name = path.relative_to(self.folder).with_suffix("").as_posix()
                return np.asarray(image)
            self.unreadable.append(path)
        self._end_of_folder()
        return None

    def dropped(self) -> int:
        """Unreadable files read() has skipped since open()."""
        return len(self.unreadable)

    def _end_of_folder(self) -> None:
        self._warn_unreadable()
        if self.unreadable and not self.delivered:
            raise StreamError(
                f"source '{self.uri}': none of the {len(self.unreadable)} image file(s) read could be "
                f"decoded (first: {self.unreadable[0].name}); check the files"
            )

    def _warn_unreadable(self) -> None:
        if self.unreadable and not self._warned:
            self._warned = True
            names = ", ".join(p.name for p in self.unreadable[:10])
            more = f" and {len(self.unreadable) - 10} more" if len(self.unreadable) > 10 else ""
            log.warning(
                "%s: %d unreadable image(s) skipped: %s%s", self.uri, len(self.unreadable), names, more
            )

    def skip(self) -> bool:
        """Move past the next file without reading it."""
        if self._next >= len(self.files):
            return False
        self._next += 1
        return True

    def count(self) -> int:
        """Number of image files listed by open()."""
        return len(self.files)

    def close(self) -> None:
        """Name the unreadable files skipped so far (once), when reading stopped before the end."""
        self._warn_unreadable()


def _read_strict(cv2: Any, path: Path) -> np.ndarray | None:
    """The image as stored (no EXIF rotation, no conversion), None when unreadable.

    DataError unless it is 8-bit BGR colour: converting would calibrate on other data than the camera's.
    """
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        return None
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels != 3 or image.dtype != np.uint8:
        raise DataError(
            f"{path}: {channels}-channel {image.dtype} image; calibration needs 8-bit 3-channel colour "
            "images like the camera's (convert it or remove it)"
        )
    return np.asarray(image)

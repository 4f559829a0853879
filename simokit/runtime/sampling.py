"""A finite frame source read by index: counted once, then the wanted frames read in one pass.

Calibration reads a chosen subset of a folder's images or of a video's frames. Indices are read in
increasing order in one pass, which lets a video be decoded sequentially instead of seeking (seeking is
slow and not frame-exact); frames before a wanted one are only skipped (grabbed, not converted).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

from simokit.errors import ConfigError, DataError
from simokit.runtime.sources import Source, StreamError


class SampledSource:
    """Every `every`-th frame of a finite Source, by index (index i is the source's frame i * every).

    `len()` counts the kept frames; `frames()` yields BGR frames as the source gives them, or RGB when
    `rgb`; `description` (from `describe(total source frames)`) says what was read, for records.
    """

    def __init__(
        self,
        source: Source,
        every: int = 1,
        rgb: bool = False,
        describe: Callable[[int], str] | None = None,
    ) -> None:
        if every < 1:
            raise ConfigError(f"--every must be at least 1, got {every}")
        if source.live:
            raise StreamError(f"cannot sample source '{source.uri}': a live source has no fixed frames")
        self.source, self.every, self.rgb = source, every, rgb
        self.total = self._count()
        self.description = describe(self.total) if describe else f"{source.uri} ({self.total} frames)"

    def _count(self) -> int:
        self.source.open()
        try:
            known = self.source.count()
            if known is not None:
                return known
            total = 0
            while self.source.skip():
                total += 1
        finally:
            self.source.close()
        if total == 0:
            raise DataError(
                f"{self.source.uri}: no readable video frames; is it a video file OpenCV can decode?"
            )
        return total

    def __len__(self) -> int:
        """Number of kept frames (one in `every` of the source's)."""
        return (self.total + self.every - 1) // self.every

    def frames(self, indices: Sequence[int]) -> Iterator[np.ndarray]:
        """Yield the kept frames numbered `indices`, in increasing order, reading the source once."""
        wanted = sorted(set(indices))
        got = position = 0  # frames yielded; source frames consumed
        self.source.open()
        try:
            for index in wanted:
                target = index * self.every
                if position > target:  # consumed already: an unreadable file before it was skipped
                    continue
                while position < target and self.source.skip():
                    position += 1
                dropped = self.source.dropped()
                frame = self.source.read() if position == target else None
                if frame is None:
                    break
                position += 1 + self.source.dropped() - dropped  # read() may pass unreadable frames
                got += 1
                yield np.ascontiguousarray(frame[..., ::-1]) if self.rgb else frame
        finally:
            self.source.close()
        if got == 0 or got + self.source.dropped() < len(wanted):
            raise DataError(
                f"{self.source.uri}: only {got} of {len(wanted)} frames decoded on the second pass"
            )

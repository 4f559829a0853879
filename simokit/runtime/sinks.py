"""Where stream results go: an on-screen window, a video recording, per-frame files (robots run headless).

All three show the same picture, drawn once per frame by `Visualizer`: the frame, then each task by its
colouriser (segmentation blended over the frame, the depth colour map, normals as RGB, ...), tiled, with
FPS and latency written on top.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from simokit.runtime.bundle import BundleMeta
from simokit.runtime.overlay import blend, colour_of, panel, task_map
from simokit.runtime.saved_outputs import output_files
from simokit.runtime.sources import StreamError, require_cv2
from simokit.runtime.stats import StreamStats
from simokit.runtime.stream_types import Frame, Sink
from simokit.tasks.spec import OutputKind

MAX_TILE_WIDTH = 640  # wider frames are shrunk per tile so four tiles still fit a screen
FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG"}


class Visualizer:
    """(frame, outputs) -> one BGR picture of all tasks with stats text; cached per frame for all sinks."""

    def __init__(
        self, meta: BundleMeta, stats: StreamStats | None = None, label: Callable[[], str] | None = None
    ) -> None:
        self.meta, self.stats, self.label = meta, stats, label  # label: e.g. the routed engine's domain
        rng = np.random.default_rng(0)  # a fixed fallback palette when the bundle has none
        palette = meta.palette or tuple(map(tuple, rng.integers(0, 256, (256, 3))))
        self.palette = np.asarray(palette, np.uint8)
        self._last: tuple[int, np.ndarray] | None = None

    def __call__(self, frame: Frame, outputs: dict[str, np.ndarray]) -> np.ndarray:
        """The tiled (H', W', 3) uint8 BGR picture for this frame."""
        if self._last is not None and self._last[0] == frame.index:
            return self._last[1]
        cv2 = require_cv2("drawing results")
        image = frame.image
        scale = min(1.0, MAX_TILE_WIDTH / image.shape[1])
        if scale < 1.0:
            size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        tiles = [image] + [self._tile(t, v, image, cv2) for t, v in outputs.items()]
        cols = len(tiles) if len(tiles) <= 3 else math.ceil(len(tiles) / 2)
        grid = panel([tiles[i : i + cols] for i in range(0, len(tiles), cols)])
        if self.stats is not None and self.stats.delivered:
            text = f"{self.stats.infer_fps():.1f} fps  latency {self.stats.latency_ms(50, last=100):.0f} ms"
            text += f"  {self.label()}" if self.label else ""
            scale = min(0.6, max(0.35, grid.shape[1] / 900))
            _text(cv2, grid, text, (6, round(36 * scale)), scale)
        self._last = (frame.index, grid)
        return grid

    def _tile(self, task: str, value: np.ndarray, image: np.ndarray, cv2: Any) -> np.ndarray:
        h, w = image.shape[:2]
        colouriser = colour_of(task)
        m = task_map(colouriser, np.asarray(value))
        if colouriser.labels:
            labels = cv2.resize(m.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
            rgb = blend(image[..., ::-1], colouriser.draw(labels, self.palette, None), 0.5)
        else:
            m = m if colouriser.vectors else m.astype(np.float32)
            rgb = colouriser.draw(cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR), self.palette, None)
        tile = np.ascontiguousarray(rgb[..., ::-1])
        _text(cv2, tile, task, (4, h - 6), 0.4)
        return tile


class WindowSink:
    """Shows the picture in an OpenCV window; q or Esc (or closing the window) stops the stream."""

    def __init__(self, visual: Visualizer, title: str = "simokit") -> None:
        self.visual, self.title = visual, title
        self.cv2 = require_cv2("the window")
        try:
            self.cv2.namedWindow(title, self.cv2.WINDOW_NORMAL)
        except self.cv2.error:
            raise StreamError(
                "cannot open a window: this OpenCV has no GUI (headless wheel) or there is no display; "
                "pass --headless (and --record/--save to keep the pictures)"
            ) from None

    def write(self, frame: Frame, outputs: dict[str, np.ndarray]) -> bool:
        """Draw; False (stop) on q/Esc or when the user closed the window."""
        self.cv2.imshow(self.title, self.visual(frame, outputs))
        key = self.cv2.waitKey(1) & 0xFF
        closed = self.cv2.getWindowProperty(self.title, self.cv2.WND_PROP_VISIBLE) < 1
        return key not in (ord("q"), 27) and not closed

    def close(self) -> None:
        """Close the window."""
        self.cv2.destroyWindow(self.title)


class RecordSink:
    """Writes the pictures to a video; the file appears (complete, playable) only when the stream ends."""

    def __init__(self, path: str | Path, visual: Visualizer, fps: float | Callable[[], float] = 30.0) -> None:
        self.path, self.visual, self.fps = Path(path), visual, fps  # a callable: asked at the first frame
        if self.path.suffix.lower() not in FOURCC:
            raise StreamError(f"--record {self.path}: use one of {', '.join(FOURCC)} for the video file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self.frames = 0
        self._writer: Any = None
        self._size: tuple[int, int] = (0, 0)

    def write(self, frame: Frame, outputs: dict[str, np.ndarray]) -> None:
        """Append one picture (resized to the first one's size if the source changed resolution)."""
        cv2 = require_cv2("--record")
        picture = self.visual(frame, outputs)
        if self._writer is None:
            self._size = (picture.shape[1], picture.shape[0])
            fourcc = cv2.VideoWriter_fourcc(*FOURCC[self.path.suffix.lower()])
            fps = (self.fps() if callable(self.fps) else self.fps) or 30.0
            self._writer = cv2.VideoWriter(str(self.tmp), fourcc, fps, self._size)
            if not self._writer.isOpened():
                raise StreamError(f"--record {self.path}: OpenCV cannot write this video format here")
        if (picture.shape[1], picture.shape[0]) != self._size:
            picture = cv2.resize(picture, self._size)
        self._writer.write(picture)
        self.frames += 1

    def close(self) -> None:
        """Finalise the container and move it into place (nothing is written for zero frames)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            if self.frames:
                os.replace(self.tmp, self.path)
        if self.tmp.exists():
            self.tmp.unlink()


class SaveSink:
    """Per frame, named after the input file when the source has names (else the frame index):
    DIR/<name>.png (the picture) and per task a label PNG, a 16-bit millimetre depth PNG or a float32
    .npy (see runtime.saved_outputs); `raw` also keeps every output as the graph gave it. Each atomic.
    """

    def __init__(self, folder: str | Path, visual: Visualizer, raw: bool = False) -> None:
        self.folder, self.visual, self.raw = Path(folder), visual, raw
        self.folder.mkdir(parents=True, exist_ok=True)
        self.kinds = {t: OutputKind(o.get("kind", "values")) for t, o in visual.meta.outputs.items()}

    def write(self, frame: Frame, outputs: dict[str, np.ndarray]) -> None:
        """Write the picture and each task's files."""
        cv2 = require_cv2("--save")
        ok, png = cv2.imencode(".png", self.visual(frame, outputs))
        if not ok:
            raise StreamError(f"--save {self.folder}: PNG encoding failed")
        stem = self.folder / (frame.name or f"{frame.index:06d}")
        stem.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(stem.with_name(stem.name + ".png"), png.tobytes())
        for task, value in outputs.items():
            kind = self.kinds.get(task, OutputKind.VALUES)
            for suffix, data in output_files(cv2, task, value, kind, self.raw).items():
                _atomic_write(stem.with_name(stem.name + suffix), data)

    def close(self) -> None:
        """Nothing buffered."""


def make_sinks(
    meta: BundleMeta,
    stats: StreamStats | None = None,
    *,
    window: bool = False,
    record: str | Path | None = None,
    save: str | Path | None = None,
    save_raw: bool = False,
    fps: float | Callable[[], float] = 30.0,
    label: Callable[[], str] | None = None,
) -> list[Sink]:
    """The sinks the CLI flags ask for, sharing one Visualizer (no window = headless; .mcap: a ROS 2 bag)."""
    visual = Visualizer(meta, stats, label)
    sinks: list[Sink] = []
    if record and str(record).lower().endswith(".mcap"):
        from simokit.runtime.ros.bag_sink import BagSink

        sinks.append(BagSink(record, meta))
    elif record:
        sinks.append(RecordSink(record, visual, fps))
    if save:
        sinks.append(SaveSink(save, visual, save_raw))
    if window:
        sinks.append(WindowSink(visual))
    return sinks


def _text(cv2: Any, image: np.ndarray, text: str, org: tuple[int, int], scale: float) -> None:
    """White text with a dark outline, readable on any background (drawn in place)."""
    cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)

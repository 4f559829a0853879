"""A threaded camera-stream pipeline: capture -> infer (pre/post-processing inside Engine.infer) -> sinks.

Live sources (cameras, RTSP, GStreamer) keep only the newest frame between capture and inference, so
latency cannot build up: older frames are dropped and counted. Files and folders drop nothing and keep
their order. A live source that drops is re-opened with exponential back-off. Use it as an iterator,
`with Stream(engine, "0") as s: for frame, outputs in s: ...` (the `with` finalises sinks however the
loop ends), or call `run()` with sinks (window, recording, ...).
"""

from __future__ import annotations

import inspect
import logging
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from simokit.runtime.sources import Source, open_source
from simokit.runtime.stats import StreamStats
from simokit.runtime.stream_types import (
    CallbackSink,
    Frame,
    Reconnect,
    Sink,
    get_until,
    put_newest,
    put_until,
    stop_on_signals,
)

if TYPE_CHECKING:
    from simokit.runtime.engine import Engine

log = logging.getLogger(__name__)
_END = object()  # sentinel passed down the queues when a stage finishes
_POLL = 0.1  # seconds between checks of the stop flag while a stage waits


class Stream:
    """Runs `engine` on every frame of `source` (a URI, camera index or Source) in a pipeline of threads."""

    def __init__(
        self,
        engine: Engine,
        source: str | int | Source,
        sinks: Sequence[Sink | Callable[[Frame, dict[str, np.ndarray]], Any]] = (),
        *,
        width: int = 0,
        height: int = 0,
        fps: float = 0.0,
        max_frames: int = 0,
        reconnect: Reconnect | None = None,
        log_every: float = 5.0,
    ) -> None:
        self.engine = engine
        self.source = open_source(source, width, height, fps)
        self.sinks: list[Sink] = [s if hasattr(s, "write") else CallbackSink(s) for s in sinks]  # type: ignore[misc]
        self.max_frames, self.reconnect, self.log_every = max_frames, reconnect or Reconnect(), log_every
        self.stats = StreamStats()
        depth = 1 if self.source.live else 4  # live: only the newest frame waits; files: a little read-ahead
        self._frames: queue.Queue[Any] = queue.Queue(depth)
        self._results: queue.Queue[Any] = queue.Queue(depth)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._error: BaseException | None = None
        self._failures = 0  # re-open failures since the last good frame
        self._gen: Generator[tuple[Frame, dict[str, np.ndarray]], None, None] | None = None

    def stop(self) -> None:
        """Ask every stage to finish; safe from any thread, a sink or a signal handler."""
        self._stop.set()

    def __iter__(self) -> Iterator[tuple[Frame, dict[str, np.ndarray]]]:
        """Yield (frame, {task: output}) as results reach the end of the pipeline (one pass per Stream)."""
        if self._gen is not None:
            raise RuntimeError("a Stream runs once; create a new one to run again")
        self._gen = self._iterate()
        return self._gen

    def __enter__(self) -> Stream:
        """`with Stream(...) as s:` guarantees close() however the block ends."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close on leaving the block."""
        self.close()

    def close(self) -> None:
        """Stop and finalise now (sinks closed, recordings playable); from other threads use stop()."""
        self.stop()
        if self._gen is not None and inspect.getgeneratorstate(self._gen) != inspect.GEN_RUNNING:
            self._gen.close()

    def _iterate(self) -> Generator[tuple[Frame, dict[str, np.ndarray]], None, None]:
        last_log = time.perf_counter()
        try:
            self.source.open()  # an unopenable source fails here, in the caller's thread, with one line
            self.stats.started = time.perf_counter()
            for name, target in (("capture", self._capture), ("infer", self._infer)):
                self._threads.append(threading.Thread(target=target, name=f"simokit-{name}", daemon=True))
                self._threads[-1].start()
            while (item := self._get(self._results)) is not _END:
                frame, outputs = item
                for sink in self.sinks:
                    if sink.write(frame, outputs) is False:
                        self.stop()
                self.stats.latencies.append(time.perf_counter() - frame.timestamp)
                self.stats.delivered += 1
                if self.log_every and time.perf_counter() - last_log >= self.log_every:
                    last_log = time.perf_counter()
                    log.info("%s: %s", self.source.uri, self.stats.recent())
                yield frame, outputs
                if self.max_frames and self.stats.delivered >= self.max_frames:
                    break
            if self._error is not None:
                raise self._error
        finally:
            self._finish()

    def run(self, handle_signals: bool = True) -> StreamStats:
        """Drive the stream through its sinks until end of file, stop(), max_frames, a signal or an error.

        With handle_signals (main thread only), SIGTERM and a first Ctrl-C stop the stream cleanly so
        recordings are finalised; a second Ctrl-C interrupts at once.
        """
        with self, stop_on_signals(self.stop, self._stop.is_set, self.source.uri, handle_signals):
            for _ in self:
                pass
        return self.stats

    def _finish(self) -> None:
        self.stop()
        for thread in self._threads:
            thread.join(timeout=5.0)
            if thread.is_alive():  # a driver stuck in read(); the thread is a daemon, so it cannot hang exit
                log.warning("%s: %s stage did not stop within 5 s", self.source.uri, thread.name)
        self.stats.stopped = time.perf_counter()
        errors = []
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as exc:  # close every sink, then report the first failure
                errors.append(exc)
        if self._threads:
            log.info("%s: stream ended after %d frames", self.source.uri, self.stats.delivered)
        if errors and self._error is None:
            raise errors[0]

    def _capture(self) -> None:
        try:
            while not self._stop.is_set():
                image = self.source.read()
                if image is None:
                    if not self.source.live:
                        break  # end of file or folder
                    self._reopen()
                    continue
                frame = Frame(
                    self.stats.captured, image, time.perf_counter(), self.source.header, self.source.name
                )
                self._failures = 0
                self.stats.captured += 1
                if self.source.live:
                    self.stats.dropped += put_newest(self._frames, frame)
                else:
                    self._put(self._frames, frame)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._error = self._error or exc
        finally:
            self.source.close()
            self._put(self._frames, _END)

    def _reopen(self) -> None:
        opened, self._failures = self.reconnect.reopen(self.source, self._stop, self._failures)
        self.stats.reconnects += opened

    def _infer(self) -> None:
        try:
            while (frame := self._get(self._frames)) is not _END:
                start = time.perf_counter()
                outputs = self.engine.infer(frame.image)
                self.stats.infer_seconds += time.perf_counter() - start
                self.stats.inferred += 1
                self._put(self._results, (frame, outputs))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._error = self._error or exc
        finally:
            self._put(self._results, _END)

    def _get(self, q: queue.Queue[Any]) -> Any:
        return get_until(q, self._stop, _END, _POLL)

    def _put(self, q: queue.Queue[Any], item: Any) -> None:
        if not put_until(q, item, self._stop, _POLL) and item is _END:
            put_newest(q, item)  # stopping: still wake a stage waiting on this queue

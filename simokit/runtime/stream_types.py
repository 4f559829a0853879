"""Stream building blocks: Frame, Sink protocol, CallbackSink, Reconnect policy, queue and signal helpers."""

from __future__ import annotations

import logging
import queue
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from simokit.runtime.source_base import Source, StreamError

if TYPE_CHECKING:
    from simokit.runtime.ros.header import FrameHeader

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Frame:
    """A captured frame: its index in capture order, the (H, W, 3) uint8 BGR image, perf_counter() time.

    `header`: the recorded message header (stamp, frame_id, camera_info) of a frame read from a bag.
    `name`: the input's own name when the source has one (an image's path in its folder, no suffix).
    """

    index: int
    image: np.ndarray
    timestamp: float
    header: FrameHeader | None = None
    name: str | None = None


class Sink(Protocol):
    """Receives every delivered frame with its outputs; write() returning False asks the stream to stop."""

    def write(self, frame: Frame, outputs: dict[str, np.ndarray]) -> bool | None:
        """Consume one result."""

    def close(self) -> None:
        """Flush and release (finalise files); called once when the stream ends."""


@dataclass(frozen=True)
class Reconnect:
    """Re-open policy for a dropped live source: `attempts` in a row (0 = never, < 0 = forever)."""

    attempts: int = 10
    delay: float = 0.5
    max_delay: float = 8.0
    factor: float = 2.0

    def wait(self, failure: int) -> float:
        """Seconds to wait before re-open attempt `failure` (1-based): delay * factor**(failure-1), capped."""
        return min(self.delay * self.factor ** (failure - 1), self.max_delay)

    def reopen(self, source: Source, stop: threading.Event, failures: int) -> tuple[bool, int]:
        """Close and re-open a dropped live source with back-off, logging each try.

        `failures` counts re-open attempts since the source last gave a frame (the caller resets it),
        so a source that opens but never delivers still runs out of attempts. Returns (re-opened, failures);
        (False, n) when `stop` was set; StreamError once the attempts are used up.
        """
        source.close()
        total = "" if self.attempts < 0 else f"/{self.attempts}"
        while not stop.is_set():
            failures += 1
            if 0 <= self.attempts < failures:
                raise StreamError(
                    f"source '{source.uri}' dropped and {self.attempts} re-open attempts failed; "
                    "check the camera or stream (raise --reconnect-attempts to wait longer)"
                )
            delay = self.wait(failures)
            log.warning("%s: no frame; re-open in %.2f s (attempt %d%s)", source.uri, delay, failures, total)
            if stop.wait(delay):
                break
            try:
                source.open()
            except StreamError as exc:
                log.warning("%s", exc)
                continue
            log.info("%s: re-opened", source.uri)
            return True, failures
        return False, failures


class CallbackSink:
    """Wraps a function (frame, outputs) -> bool | None as a sink."""

    def __init__(self, fn: Callable[[Frame, dict[str, np.ndarray]], Any]) -> None:
        self.fn = fn

    def write(self, frame: Frame, outputs: dict[str, np.ndarray]) -> bool | None:
        """Call the function; False from it stops the stream."""
        return self.fn(frame, outputs) is not False

    def close(self) -> None:
        """Nothing to release."""


def get_until(q: queue.Queue[Any], stop: threading.Event, default: Any, poll: float = 0.1) -> Any:
    """Next item from `q`, or `default` as soon as `stop` is set."""
    while not stop.is_set():
        try:
            return q.get(timeout=poll)
        except queue.Empty:
            continue
    return default


def put_until(q: queue.Queue[Any], item: Any, stop: threading.Event, poll: float = 0.1) -> bool:
    """Blocking put that gives up (returns False) once `stop` is set."""
    while not stop.is_set():
        try:
            q.put(item, timeout=poll)
            return True
        except queue.Full:
            continue
    return False


def put_newest(q: queue.Queue[Any], item: Any) -> int:
    """Put without blocking, discarding the oldest waiting items; returns how many were discarded."""
    dropped = 0
    while True:
        try:
            q.put_nowait(item)
            return dropped
        except queue.Full:
            try:
                q.get_nowait()
                dropped += 1
            except queue.Empty:
                pass


@contextmanager
def stop_on_signals(
    stop: Callable[[], None], stopping: Callable[[], bool], name: str, enabled: bool = True
) -> Iterator[None]:
    """While inside, SIGTERM and a first Ctrl-C call stop(); a second Ctrl-C raises KeyboardInterrupt.

    Signal handlers can only be set from the main thread; elsewhere (or when not enabled) this does nothing.
    """
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum: int, _frame: Any) -> None:
        if signum == signal.SIGINT and stopping():
            raise KeyboardInterrupt
        log.info("%s: %s received, stopping", name, signal.Signals(signum).name)
        stop()

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)

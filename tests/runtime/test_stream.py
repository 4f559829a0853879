"""The stream pipeline end to end: files keep every frame in order, live sources drop and reconnect,
recordings are finalised however the stream stops, and the CLI reports bad sources in one line."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from stream_helpers import FRAME_HW, FakeLive, SlowEngine, count_frames, write_video

from simokit.cli import main
from simokit.runtime import Frame, Reconnect, Stream, StreamError, load
from simokit.runtime.sinks import RecordSink, Visualizer

FAST = Reconnect(attempts=3, delay=0.001, max_delay=0.004)


def _nearest(frame: np.ndarray, originals: np.ndarray) -> int:
    errors = np.abs(originals.astype(np.int16) - frame.astype(np.int16)).mean(axis=(1, 2, 3))
    return int(errors.argmin())


def test_file_stream_keeps_every_frame_in_order(
    stream_bundle: Path, scene_frames: np.ndarray, tmp_path: Path
) -> None:
    video = write_video(tmp_path / "scenes.mp4", scene_frames[:12])
    with Stream(load(stream_bundle, threads=1), str(video), log_every=0) as stream:
        results = list(stream)
    h, w = FRAME_HW
    assert [f.index for f, _ in results] == list(range(12))
    assert [_nearest(f.image, scene_frames[:12]) for f, _ in results] == list(range(12))
    for _, out in results:
        assert out["seg"].shape == (11, h, w) and out["depth"].shape == (1, h, w)
        assert out["normal"].shape == (3, h, w)
    s = stream.stats
    assert (s.captured, s.inferred, s.delivered, s.dropped, s.reconnects) == (12, 12, 12, 0, 0)
    assert s.latency_ms(50) > 0 and s.latency_ms(99) >= s.latency_ms(50)
    assert "12 delivered" in s.summary() and "p99" in s.summary()


def test_live_source_keeps_only_the_newest_frame(caplog: pytest.LogCaptureFixture) -> None:
    src = FakeLive([True], period=0.001)  # ~1000 fps camera, ~50 fps engine
    stream = Stream(SlowEngine(0.02), src, max_frames=10, log_every=0.001)  # type: ignore[arg-type]
    with caplog.at_level("INFO", logger="simokit.runtime.stream"):
        indices = [f.index for f, _ in stream]
    periodic = [r.getMessage() for r in caplog.records if "latency p50" in r.getMessage()]
    assert len(periodic) >= 5 and "fake://cam: capture" in periodic[0] and "dropped" in periodic[-1]
    s = stream.stats
    assert len(indices) == 10 and indices == sorted(set(indices))
    assert s.dropped > 0 and s.captured > s.delivered and indices[-1] > 9
    # A queue that kept every frame would age each result by all the frames before it (p99 close to
    # the whole run); newest-only keeps each result about one inference old.
    assert s.latency_ms(99) < 1000 * s.elapsed() / 2


def test_live_source_reconnects_and_resumes(caplog: pytest.LogCaptureFixture) -> None:
    # drops once after 4 frames, then 2 failed re-opens; the second session does not drop, so how far the
    # capture thread runs ahead of the consumer cannot add reconnects
    src = FakeLive([True, False, False, True], drop_after=4, drop_sessions=1)
    stream = Stream(SlowEngine(0.0), src, max_frames=6, reconnect=FAST, log_every=0)  # type: ignore[arg-type]
    with caplog.at_level("INFO"):
        results = list(stream)
    assert src.open_calls == 4 and stream.stats.reconnects == 1
    sessions = [int(out["depth"][0, 0, 0]) // 10 for _, out in results]
    assert sessions[0] == 0 and sessions[-1] == 1  # frames from before and after the drop
    assert [f.index for f, _ in results] == sorted({f.index for f, _ in results})
    messages = [r.getMessage() for r in caplog.records]
    assert sum("re-open in" in m for m in messages) == 3 and any("re-opened" in m for m in messages)


def test_lost_live_source_fails_after_the_attempts() -> None:
    src = FakeLive([True, False], drop_after=3)
    stream = Stream(SlowEngine(0.0), src, reconnect=FAST, log_every=0)  # type: ignore[arg-type]
    with pytest.raises(StreamError, match=r"'fake://cam' dropped and 3 re-open attempts failed"):
        list(stream)
    assert src.open_calls == 4 and stream.stats.delivered <= 3


def test_sigterm_and_stop_finalise_the_recording(
    stream_bundle: Path, scene_frames: np.ndarray, tmp_path: Path
) -> None:
    engine = load(stream_bundle, threads=1)
    video = write_video(tmp_path / "v.mp4", scene_frames)
    previous = signal.getsignal(signal.SIGTERM)

    def terminate(frame: Frame, _: object) -> None:
        if frame.index == 4:
            os.kill(os.getpid(), signal.SIGTERM)

    rec = RecordSink(tmp_path / "term.mp4", Visualizer(engine.meta))
    stats = Stream(engine, str(video), [rec, terminate], log_every=0).run()
    assert 5 <= stats.delivered < len(scene_frames)
    assert count_frames(tmp_path / "term.mp4") == stats.delivered == rec.frames
    assert signal.getsignal(signal.SIGTERM) is previous
    assert not list(tmp_path.glob(".*partial*"))

    rec = RecordSink(tmp_path / "interrupt.mp4", Visualizer(engine.meta))
    with pytest.raises(KeyboardInterrupt), Stream(engine, str(video), [rec], log_every=0) as stream:
        for frame, _ in stream:
            if frame.index == 2:
                raise KeyboardInterrupt  # what Ctrl-C does inside a user's loop
    assert count_frames(tmp_path / "interrupt.mp4") == 3


def test_cli_run_records_saves_and_prints_stats(
    stream_bundle: Path, scene_frames: np.ndarray, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    video = write_video(tmp_path / "v.mp4", scene_frames[:8])
    out, save = tmp_path / "out" / "rec.mp4", tmp_path / "frames"
    args = ["run", str(stream_bundle), "--source", str(video), "--headless", "--threads", "1", "-q"]
    assert main([*args, "--record", str(out), "--save", str(save)]) == 0
    text = capsys.readouterr().out
    assert "8 delivered, 8 captured, 0 dropped" in text and "latency (capture to sink): p50" in text
    assert count_frames(out) == 8
    assert len(list(save.glob("*_seg.png"))) == 8 and len(list(save.glob("*_depth.png"))) == 8
    depth_mm = cv2.imread(str(save / "000007_depth.png"), cv2.IMREAD_UNCHANGED)
    assert depth_mm.dtype == np.uint16 and depth_mm.shape == FRAME_HW
    assert main([*args, "--max-frames", "3"]) == 0
    assert "3 delivered" in capsys.readouterr().out


def test_cli_bad_source_is_one_line_and_exit_2(
    stream_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.mp4"
    assert main(["run", str(stream_bundle), "--source", str(missing), "--headless"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("simokit run: error: cannot open source") and str(missing) in err
    assert "\n" not in err
    assert main(["run", str(stream_bundle), "--source", "/dev/video97", "--headless"]) == 2
    assert "'/dev/video97': no such camera" in capsys.readouterr().err


def test_simokit_run_needs_no_torch_and_imports_cv2_lazily(
    stream_bundle: Path, scene_frames: np.ndarray, tmp_path: Path
) -> None:
    video, rec = write_video(tmp_path / "v.mp4", scene_frames[:4]), tmp_path / "rec.mp4"
    code = (
        "import sys\n"
        "sys.modules['torch'] = None  # any 'import torch' now fails\n"
        "import simokit.runtime\n"
        "print('cv2' in sys.modules)\n"
        "from simokit.cli import main\n"
        f"args = ['run', {str(stream_bundle)!r}, '--source', {str(video)!r}, '--headless', '-q']\n"
        f"print(main([*args, '--record', {str(rec)!r}]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "False" and lines[-1] == "0" and "4 delivered" in proc.stdout
    assert count_frames(rec) == 4


def test_worker_thread_stream_with_callback_stops_from_outside() -> None:
    """What a node shell (ros2/simokit_ros) relies on: run() off the main thread, stop() from elsewhere."""
    got: list[tuple[int, float, tuple[int, ...]]] = []
    enough = threading.Event()

    def publish(frame: Frame, outputs: dict[str, np.ndarray]) -> None:
        got.append((frame.index, frame.timestamp, outputs["depth"].shape))
        if len(got) == 5:
            enough.set()

    stream = Stream(SlowEngine(0.002), FakeLive([True]), [publish], log_every=0)  # type: ignore[arg-type]
    worker = threading.Thread(target=stream.run, kwargs={"handle_signals": False})
    worker.start()
    assert enough.wait(timeout=30)
    stream.stop()
    worker.join(timeout=10)
    assert not worker.is_alive() and len(got) == stream.stats.delivered >= 5
    assert all(shape == (1, *FRAME_HW) for _, _, shape in got)
    assert [i for i, _, _ in got] == sorted({i for i, _, _ in got})
    assert all(t1 >= t0 for (_, t0, _), (_, t1, _) in itertools.pairwise(got))

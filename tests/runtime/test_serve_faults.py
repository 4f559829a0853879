"""`simokit serve` under bad requests and SIGTERM: each bad request gets an error response, a client
that goes away mid-request costs nothing, and the server keeps answering correct requests exactly."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from serve_helpers import Server, start_serve

from simokit.runtime import load

MAX_BATCH = 4
ATOL = 1e-4  # batch 1 vs batch 4 in ONNX Runtime differ in the last float bits


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 56x56 vitnano14 bundle as robots use them: uint8 NHWC frames in, seg labels out."""
    from tiny_models import tiny_model

    from simokit.export.bundle import write_bundle
    from simokit.export.onnx import ExportSpec

    spec = ExportSpec(("seg", "depth", "normal"), 56, 56, input_kind="uint8", seg_output="labels")
    images = np.random.default_rng(0).integers(0, 256, size=(1, 56, 56, 3), dtype=np.uint8)
    out = tmp_path_factory.mktemp("faults") / "tiny"
    model = tiny_model(seed=0, classes=5, seg_batch_norm=False)
    return write_bundle(out, model, spec, images, classes=tuple("abcde"), palette=np.zeros((5, 3)))


@pytest.fixture(scope="module")
def served(bundle: Path) -> Iterator[Server]:
    """One server for all bad requests, with --max-batch 4; it must still stop cleanly at the end."""
    # A 0.1 s batcher delay, so that requests sent together are batched together.
    server = start_serve(bundle, "faults", "--max-batch", str(MAX_BATCH), "--queue-delay-us", "100000")
    yield server
    code, out, _ = server.stop(signal.SIGINT)
    assert code == 0 and "stopped" in out, out


def _still_answers(server: Server, bundle: Path, protocol: str) -> None:
    assert server.proc.poll() is None, "".join(server.lines)
    frames = np.random.default_rng(7).integers(0, 256, size=(5, 56, 56, 3), dtype=np.uint8)
    remote = load(server.url(protocol))
    try:
        got, want = remote.infer(frames, bgr=False), load(bundle).infer(frames, bgr=False)
    finally:
        remote.close()  # type: ignore[attr-defined]
    for task, w in want.items():
        assert got[task].shape == w.shape
        np.testing.assert_allclose(got[task], w, rtol=0, atol=ATOL)


def _infer_raw(server: Server, protocol: str, shape: tuple[int, ...], wire: str, data: bytes) -> str:
    """Send `data` with the declared shape and type as they are (tritonclient checks neither when the
    bytes are set directly) and return the server's error message."""
    if protocol == "grpc":
        import tritonclient.grpc as m
    else:
        import tritonclient.http as m
    client = m.InferenceServerClient(f"127.0.0.1:{server.port + (protocol == 'grpc')}")
    inp = m.InferInput("image", list(shape), wire)
    if protocol == "http":
        inp._raw_data = data
        inp._parameters["binary_data_size"] = len(data)
    else:
        inp._raw_content = data
    timeout = {"client_timeout": 30} if protocol == "grpc" else {}
    try:
        client.infer(server.name, [inp], **timeout)
    except m.InferenceServerException as exc:
        return str(exc.message())
    finally:
        client.close()
    pytest.fail(
        f"the server answered a bad request ({wire} {shape}, {len(data)} bytes) instead of refusing it"
    )


FRAME = 56 * 56 * 3
# case: (declared shape, declared type, bytes sent, what the error names)
BAD_REQUESTS: dict[str, tuple[tuple[int, ...], str, int, str]] = {
    "wrong dtype": (
        (1, 56, 56, 3),
        "FP32",
        4 * FRAME,
        r"data-type is 'FP32', but model '\w+' expects 'UINT8'",
    ),
    "wrong dtype, right size": ((1, 56, 56, 3), "INT8", FRAME, r"data-type is 'INT8'"),
    "wrong rank": ((1, 56, 56), "UINT8", 56 * 56, r"unexpected shape .* got \[1,56,56\]"),
    "extra axis": ((1, 56, 56, 3, 1), "UINT8", FRAME, r"unexpected shape"),
    "wrong size": ((1, 40, 60, 3), "UINT8", 40 * 60 * 3, r"unexpected shape"),
    "empty batch": ((0, 56, 56, 3), "UINT8", 0, r"byte size mismatch"),
    "empty batch with a frame's bytes": ((0, 56, 56, 3), "UINT8", FRAME, r"batch size"),
    "batch over max_batch_size": (
        (MAX_BATCH + 1, 56, 56, 3),
        "UINT8",
        (MAX_BATCH + 1) * FRAME,
        r"batch-size must be <= 4",
    ),
    "fewer bytes than the shape": ((2, 56, 56, 3), "UINT8", FRAME, r"byte size mismatch"),
}


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_a_bad_request_gets_an_error_and_serving_goes_on(
    served: Server, bundle: Path, case: str, protocol: str
) -> None:
    shape, wire, size, expected = BAD_REQUESTS[case]
    message = _infer_raw(served, protocol, shape, wire, bytes(size))
    assert re.search(expected, message), message
    _still_answers(served, bundle, protocol)


def test_a_bad_request_batched_with_good_ones_does_not_fail_them(served: Server, bundle: Path) -> None:
    """Triton lets a request declaring batch 0 with one frame's bytes through; batched with others, the
    Python backend counts the frame's height as its batch and fails the whole batch. simokit's
    triton:// engines retry that failure, so their requests still get the right answers."""
    frames = np.random.default_rng(11).integers(0, 256, size=(3, 56, 56, 3), dtype=np.uint8)
    want = load(bundle).infer(frames, bgr=False)
    remotes = [load(served.url(p)) for p in ("http", "grpc", "http")]

    def good(i: int, start: threading.Barrier, got: dict[int, object]) -> None:
        start.wait()
        try:
            got[i] = remotes[i].infer(frames[i : i + 1], bgr=False)
        except Exception as exc:  # reported below
            got[i] = exc

    for _ in range(3):
        start = threading.Barrier(4)
        got: dict[int, object] = {}
        threads = [threading.Thread(target=good, args=(i, start, got)) for i in range(3)]
        for t in threads:
            t.start()
        start.wait()
        message = _infer_raw(served, "http", (0, 56, 56, 3), "UINT8", bytes(FRAME))
        for t in threads:
            t.join(timeout=60)
        assert "batch size" in message
        for i in range(3):
            assert isinstance(got[i], dict), got[i]
            for task, w in want.items():
                np.testing.assert_allclose(got[i][task], w[i : i + 1], rtol=0, atol=ATOL)
    for remote in remotes:
        remote.close()  # type: ignore[attr-defined]


def _http_request(server: Server, body_fraction: float, read: bool) -> bytes:
    """A binary-data HTTP infer request for one frame, of which only `body_fraction` of the body is sent."""
    frame = np.zeros((1, 56, 56, 3), np.uint8).tobytes()
    header = {
        "inputs": [
            {
                "name": "image",
                "shape": [1, 56, 56, 3],
                "datatype": "UINT8",
                "parameters": {"binary_data_size": len(frame)},
            }
        ]
    }
    head = json.dumps(header).encode()
    body = head + frame
    request = (
        f"POST /v2/models/{server.name}/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Inference-Header-Content-Length: {len(head)}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(request + body[: int(len(body) * body_fraction)])
        return s.recv(256) if read else b""


def test_a_client_that_disconnects_mid_request_costs_nothing(served: Server, bundle: Path) -> None:
    assert _http_request(served, 1.0, read=True).startswith(b"HTTP/1.1 200")  # the raw request is valid
    for fraction in (0.0, 0.01, 0.5, 0.99):  # headers only, then part of the body, then gone
        _http_request(served, fraction, read=False)
    for _ in range(8):  # a whole request, gone before the answer
        _http_request(served, 1.0, read=False)
    _still_answers(served, bundle, "http")
    import tritonclient.grpc as grpc

    client = grpc.InferenceServerClient(f"127.0.0.1:{served.port + 1}")
    inp = grpc.InferInput("image", [MAX_BATCH, 56, 56, 3], "UINT8")
    inp.set_data_from_numpy(np.zeros((MAX_BATCH, 56, 56, 3), np.uint8))
    for _ in range(8):  # gRPC deadline before the answer: the client cancels the call
        with pytest.raises(grpc.InferenceServerException, match=r"(?i)deadline"):
            client.infer(served.name, [inp], client_timeout=1e-4)
    client.close()
    _still_answers(served, bundle, "grpc")


def _leftovers(pid: int) -> tuple[list[int], list[str]]:
    """Processes and /dev/shm segments a stopped server left behind (pytriton names both after its pid)."""
    mark = f"pytrtion{pid}-"
    procs = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and mark in (entry / "cmdline").read_bytes().decode(errors="replace"):
                procs.append(int(entry.name))
        except OSError:
            continue
    shm = Path("/dev/shm")
    return procs, sorted(p.name for p in shm.glob(f"{mark}*")) if shm.is_dir() else []


@pytest.mark.parametrize("signals", [1, 2])
def test_sigterm_under_load_stops_cleanly(bundle: Path, signals: int) -> None:
    """16 clients for about 2 s, then SIGTERM (and a second one 0.3 s later, as an impatient service
    manager or user sends) while they keep sending: exit 0, 'stopped', no crash, nothing left behind."""
    server = start_serve(bundle, "sigterm")
    frames = np.random.default_rng(5).integers(0, 256, size=(8, 56, 56, 3), dtype=np.uint8)
    want = load(bundle).infer(frames, bgr=False)
    answered, wrong = [0] * 16, [0] * 16
    deadline = time.monotonic() + 20  # the clients stop at their first error or at this time

    def client(c: int) -> None:
        remote = load(server.url("grpc" if c % 2 else "http"))
        try:
            while time.monotonic() < deadline:
                i = (c + answered[c]) % len(frames)
                out = remote.infer(frames[i : i + 1], bgr=False)
                answered[c] += 1
                wrong[c] += any(
                    not np.allclose(out[t], w[i : i + 1], rtol=0, atol=ATOL) for t, w in want.items()
                )
        except Exception:  # the server went away: expected after SIGTERM
            pass
        finally:
            remote.close()  # type: ignore[attr-defined]

    threads = [threading.Thread(target=client, args=(c,)) for c in range(16)]
    for t in threads:
        t.start()
    time.sleep(2)
    before = sum(answered)
    if signals == 2:
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
    code, out, seconds = server.stop(signal.SIGTERM)
    for t in threads:
        t.join(timeout=30)
    procs, shm = _leftovers(server.proc.pid)
    for pid in procs:  # leave nothing behind after a failed check either
        os.kill(pid, signal.SIGKILL)
    for name in shm:
        (Path("/dev/shm") / name).unlink(missing_ok=True)
    assert before > 0 and sum(wrong) == 0
    assert code == 0 and "stopped" in out, out
    assert not re.search(r"Signal \(11\)|Non-graceful|exited with failure", out), out
    assert not procs and not shm, f"left behind: processes {procs}, /dev/shm {shm}"
    assert seconds < 20, f"SIGTERM took {seconds:.1f} s"

"""Soak test of `simokit serve` on 127.0.0.1: long load, bad requests mixed in, SIGTERM under load.

It starts `simokit serve BUNDLE`, then for --duration seconds N client threads (half HTTP, half
gRPC) each send single-frame requests from their own pool of distinct frames; every answer is
compared with the in-process engine's answer for that frame (a lost request is one that raised, a
mismatched one answered differently). Meanwhile one more thread sends bad requests in rotation
(wrong dtype, rank or size, empty or oversized batches, too few bytes, and HTTP clients that hang up
mid-request) and counts the error responses. At the end SIGTERM goes to the server while the
clients keep sending: exit code, 'stopped', seconds to exit, and anything left behind.

    python benchmarks/serve_faults.py BUNDLE [--clients 16] [--duration 300]
        [--serve-python PYTHON]   # an interpreter whose environment satisfies nvidia-pytriton (numpy<2)
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from serve_load import ATOL, RTOL, batch_counters, start_server

from simokit.runtime import load
from simokit.runtime.triton_io import example_shape, input_dtype


def bad_requests(shape: tuple[int, ...], max_batch: int) -> dict[str, tuple[tuple[int, ...], str, int]]:
    """case -> (declared shape, declared type, bytes sent) for a uint8 (B, H, W, 3) graph input."""
    frame = int(np.prod(shape[1:]))
    one = (1, *shape[1:])
    return {
        "wrong dtype": (one, "FP32", 4 * frame),
        "wrong dtype, right size": (one, "INT8", frame),
        "wrong rank": (one[:-1], "UINT8", frame // shape[-1]),
        "extra axis": ((*one, 1), "UINT8", frame),
        "wrong size": ((1, shape[1] + 8, shape[2], shape[3]), "UINT8", frame + 8 * shape[2] * shape[3]),
        "empty batch": ((0, *shape[1:]), "UINT8", 0),
        "empty batch with a frame's bytes": ((0, *shape[1:]), "UINT8", frame),
        "batch over max_batch_size": ((max_batch + 1, *shape[1:]), "UINT8", (max_batch + 1) * frame),
        "fewer bytes than the shape": ((2, *shape[1:]), "UINT8", frame),
    }


def send_bad(module: Any, client: Any, model: str, shape: tuple[int, ...], wire: str, size: int) -> str:
    """One bad request with the bytes set directly; 'error' when refused, 'answered' when not."""
    inp = module.InferInput("image", list(shape), wire)
    if hasattr(inp, "_raw_content"):  # gRPC
        inp._raw_content = bytes(size)
    else:
        inp._raw_data = bytes(size)
        inp._parameters["binary_data_size"] = size
    try:
        client.infer(model, [inp])
    except module.InferenceServerException:
        return "error"
    return "answered"


def hang_up(port: int, model: str, shape: tuple[int, ...], fraction: float) -> None:
    """An HTTP infer request for one frame of which only `fraction` is sent before the client leaves."""
    frame = int(np.prod(shape[1:]))
    one = {
        "name": "image",
        "shape": [1, *shape[1:]],
        "datatype": "UINT8",
        "parameters": {"binary_data_size": frame},
    }
    head = json.dumps({"inputs": [one]}).encode()
    body = head + bytes(frame)
    request = (
        f"POST /v2/models/{model}/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Inference-Header-Content-Length: {len(head)}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request + body[: int(len(body) * fraction)])


def bad_client(
    port: int, shape: tuple[int, ...], interval: float, stop: threading.Event, counts: Counter[str]
) -> None:
    """Bad requests in rotation (HTTP and gRPC) every `interval` s, and a hang-up every tenth turn."""
    import tritonclient.grpc as grpc
    import tritonclient.http as http

    clients = [
        (http, http.InferenceServerClient(f"127.0.0.1:{port}")),
        (grpc, grpc.InferenceServerClient(f"127.0.0.1:{port + 1}")),
    ]
    cases = bad_requests(shape, 8)
    turn = 0
    while not stop.wait(interval):
        name = list(cases)[turn % len(cases)]
        module, client = clients[turn % 2]
        counts[f"{name}: {send_bad(module, client, 'load', *cases[name])}"] += 1
        if turn % 10 == 0:
            hang_up(port, "load", shape, (0.0, 0.5, 1.0)[turn // 10 % 3])
            counts["client hung up mid-request"] += 1
        turn += 1
    for _, client in clients:
        client.close()


def good_client(
    url: str,
    pool: np.ndarray,
    want: list[dict[str, np.ndarray]],
    until: float,
    stop: threading.Event,
    out: dict[str, Any],
) -> None:
    """Single-frame requests until `until` (or the first error once `stop` is set); counts and latency."""
    remote = load(url)
    lat, i = out["lat"], 0
    try:
        while time.monotonic() < until:
            k = i % len(pool)
            t0 = time.perf_counter()
            try:
                got = remote.infer(pool[k : k + 1], bgr=False)
            except Exception as exc:  # after SIGTERM the server goes away: that is the end, not a loss
                if stop.is_set():
                    out["after_stop_error"] = str(exc)[:120]
                    return
                out["lost"] += 1
                out["errors"][str(exc)[:120]] += 1
                continue
            finally:
                i += 1
            (lat if not stop.is_set() else out["lat_stop"]).append((time.perf_counter() - t0) * 1e3)
            out["answered"] += 1
            out["mismatched"] += any(
                got[t].shape != w.shape or not np.allclose(got[t], w, rtol=RTOL, atol=ATOL)
                for t, w in want[k].items()
            )
    finally:
        remote.close()  # type: ignore[attr-defined]


def leftovers(pid: int) -> dict[str, list[str]]:
    """Processes and /dev/shm segments a stopped server left behind (pytriton names both after its pid)."""
    mark = f"pytrtion{pid}-"
    procs = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and mark in (entry / "cmdline").read_bytes().decode(errors="replace"):
                procs.append(entry.name)
        except OSError:
            continue
    return {"processes": procs, "shm": sorted(p.name for p in Path("/dev/shm").glob(f"{mark}*"))}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start, load with bad requests mixed in, SIGTERM under load; everything measured."""
    local = load(args.bundle, threads=args.threads)
    shape = example_shape(local.meta)
    if np.dtype(input_dtype(local.meta)) != np.uint8:
        raise SystemExit("serve_faults.py wants a bundle with uint8 input (export with input_kind='uint8')")
    output: list[str] = []
    proc, url = start_server(args.serve_python, args.bundle, args.port, "dynamic", output)
    rng = np.random.default_rng(0)
    pools = [rng.integers(0, 256, (args.frames, *shape[1:]), np.uint8) for _ in range(args.clients)]
    wants = [[local._run(p[k : k + 1]) for k in range(len(p))] for p in pools]
    grpc_url = url.replace("triton://", "triton+grpc://").replace(f":{args.port}/", f":{args.port + 1}/")
    stop, bad_stop, counts = threading.Event(), threading.Event(), Counter[str]()
    until = time.monotonic() + args.duration + 60  # hard bound: nobody sends after this
    outs = [
        {"lat": [], "lat_stop": [], "answered": 0, "lost": 0, "mismatched": 0, "errors": Counter()}
        for _ in range(args.clients)
    ]
    threads = [
        threading.Thread(
            target=good_client, args=((url, grpc_url)[c % 2], pools[c], wants[c], until, stop, outs[c])
        )
        for c in range(args.clients)
    ]
    threads.append(
        threading.Thread(target=bad_client, args=(args.port, shape, args.bad_interval, bad_stop, counts))
    )
    metrics = f"http://127.0.0.1:{args.port + 2}/metrics"
    before = batch_counters(metrics)
    t0 = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(args.duration)
    bad_stop.set()
    threads[-1].join(timeout=30)
    after = batch_counters(metrics)
    stop.set()
    wall = time.monotonic() - t0
    t_sig = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=120)
    exit_s = time.monotonic() - t_sig
    for t in threads[:-1]:
        t.join(timeout=60)
    time.sleep(1)  # the reader thread takes the last lines
    return summary(
        outs,
        counts,
        wall,
        (after[0] - before[0]) / max(after[1] - before[1], 1),
        {
            "exit_code": code,
            "exit_s": exit_s,
            "leftovers": leftovers(proc.pid),
            "stopped_printed": any(x.strip() == "stopped" for x in output),
            "crash_lines": [x.strip() for x in output if "Signal (11)" in x or "Non-graceful" in x],
        },
    )


def summary(
    outs: list[dict[str, Any]], counts: Counter[str], wall: float, avg_batch: float, stop: dict[str, Any]
) -> dict[str, Any]:
    """All client counters added up."""
    lat = np.concatenate([np.asarray(o["lat"], float) for o in outs])
    errors: Counter[str] = Counter()
    for o in outs:
        errors.update(o["errors"])
    return {
        "clients": len(outs),
        "seconds": wall,
        "answered": sum(o["answered"] for o in outs),
        "lost": sum(o["lost"] for o in outs),
        "mismatched": sum(o["mismatched"] for o in outs),
        "req_per_s": lat.size / wall,
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "server_avg_batch": avg_batch,
        "lost_errors": dict(errors),
        "bad_requests": dict(sorted(counts.items())),
        "sigterm": stop,
    }


def main() -> None:
    """Parse arguments, run, print the summary (and write JSON)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("bundle", type=Path)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--duration", type=float, default=300, help="seconds of load before SIGTERM")
    p.add_argument("--frames", type=int, default=32, help="distinct frames per client")
    p.add_argument("--bad-interval", type=float, default=0.05, help="seconds between bad requests")
    p.add_argument("--port", type=int, default=8400)
    p.add_argument("--threads", type=int, help="ONNX Runtime threads of the in-process engine")
    p.add_argument("--serve-python", default=sys.executable, help="interpreter that runs simokit serve")
    p.add_argument("--json", type=Path, help="also write the summary here")
    args = p.parse_args()
    result = run(args)
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

"""Load test of `simokit serve` on 127.0.0.1: concurrent clients, throughput, p50/p99, exactness.

For each server mode (dynamic batching on, then off) it starts `simokit serve BUNDLE` as its own
process, and for each client count N (default 1, 4, 16) runs N threads that each send R distinct
single-frame requests through a triton:// engine. Every answer is compared with the in-process
engine's output for the same frame (a lost, mixed-up or empty answer shows as a mismatch), and
Triton's own counters give the average batch the server actually ran. The same frames also go
through the in-process engine with N threads, as the baseline without any server.

    python benchmarks/serve_load.py BUNDLE [--clients 1,4,16] [--requests 16] [--protocol http]
        [--serve-python PYTHON]   # an interpreter whose environment satisfies nvidia-pytriton (numpy<2)
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from simokit.runtime import load
from simokit.runtime.engine import Engine

ATOL, RTOL = 1e-4, 1e-5  # batch 1 vs batch 8 in ONNX Runtime differ in the last float bits


def frames(clients: int, requests: int, h: int, w: int) -> list[np.ndarray]:
    """Distinct uint8 RGB frames (requests, h, w, 3) per client."""
    rngs = [np.random.default_rng(1000 + c) for c in range(clients)]
    return [rng.integers(0, 256, (requests, h, w, 3), np.uint8) for rng in rngs]


def drive(
    call: Callable[[np.ndarray], dict[str, np.ndarray]],
    inputs: list[np.ndarray],
    expected: list[dict[str, np.ndarray]],
    finish: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """One thread per client, started together; latency per request, wall time, worst error.

    `finish` runs at the end of each client thread (closes its connection: Triton only unloads
    cleanly on Ctrl-C when no client connection is left open).
    """
    lat: list[list[float]] = [[] for _ in inputs]
    err = np.zeros(len(inputs))
    bad = np.zeros(len(inputs), int)
    start = threading.Barrier(len(inputs) + 1)

    def client(c: int) -> None:
        call(inputs[c][0])  # connection set-up, not timed
        start.wait()
        for i, frame in enumerate(inputs[c]):
            t0 = time.perf_counter()
            out = call(frame)
            lat[c].append((time.perf_counter() - t0) * 1e3)
            for task, want in expected[c].items():
                got = out[task]
                ok = got.shape == want[i].shape and np.allclose(got, want[i], rtol=RTOL, atol=ATOL)
                bad[c] += not ok
                gap = float(np.abs(got - want[i]).max()) if got.shape == want[i].shape else np.inf
                err[c] = max(err[c], gap)
        finish()

    threads = [threading.Thread(target=client, args=(c,)) for c in range(len(inputs))]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    flat = np.concatenate([np.asarray(x) for x in lat])
    return {
        "clients": len(inputs),
        "requests": int(flat.size),
        "throughput": flat.size / wall,
        "p50_ms": float(np.percentile(flat, 50)),
        "p99_ms": float(np.percentile(flat, 99)),
        "max_abs_err": float(err.max()),
        "mismatches": int(bad.sum()),
    }


def batch_counters(metrics_url: str) -> tuple[float, float]:
    """(inferences, executions) summed from Triton's Prometheus metrics."""
    text = urllib.request.urlopen(metrics_url, timeout=10).read().decode()
    total = {}
    for key in ("nv_inference_count", "nv_inference_exec_count"):
        total[key] = sum(float(v) for v in re.findall(rf"^{key}\{{[^}}]*\}} (\S+)$", text, re.M))
    return total["nv_inference_count"], total["nv_inference_exec_count"]


def start_server(
    python: str, bundle: Path, port: int, mode: str, output: list[str] | None = None
) -> tuple[subprocess.Popen[str], str]:
    """`simokit serve` in its own process; returns it and its HTTP triton:// URL once ready.

    mode: 'dynamic' or 'off' (dynamic batching), optionally ':N' model instances, e.g. 'off:2'.
    output, if given, receives every line the server prints, also after it is ready.
    """
    batching, _, instances = mode.partition(":")
    cmd = [python, "-m", "simokit.cli", "serve", str(bundle), "--port", str(port), "--host", "127.0.0.1"]
    cmd += ["--name", "load", "--instances", instances or "1"]
    cmd += [] if batching == "dynamic" else ["--no-dynamic-batching"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = output if output is not None else []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("ready"):
            url = next(x.split()[0] for x in lines if x.strip().startswith("triton://"))
            threading.Thread(target=lines.extend, args=(proc.stdout,), daemon=True).start()  # drains the pipe
            return proc, url
    raise SystemExit("simokit serve did not start:\n" + "".join(lines))


def stop_server(proc: subprocess.Popen[str]) -> None:
    """Ctrl-C, then wait for a clean exit."""
    proc.send_signal(2)
    proc.wait(timeout=60)


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """All measurements as table rows."""
    local = load(args.bundle, threads=args.threads)
    spec = local.meta.input
    levels = [int(c) for c in args.clients.split(",")]
    inputs = frames(max(levels), args.requests, spec.height, spec.width)
    expected = [local.infer(x, bgr=False) for x in inputs]  # batches of R: within ATOL of batch-1
    rows = []
    for n in levels:
        row = drive(lambda f: local.infer(f, bgr=False), inputs[:n], expected)
        rows.append({"mode": "in-process engine", **row})
    for mode in args.modes.split(","):
        proc, url = start_server(args.serve_python, args.bundle, args.port, mode)
        metrics = f"http://127.0.0.1:{args.port + 2}/metrics"
        if args.protocol == "grpc":
            url = url.replace("triton://", "triton+grpc://").replace(f":{args.port}/", f":{args.port + 1}/")
        try:
            remote: Engine = load(url)
            call = partial(remote.infer, bgr=False)
            for n in levels:
                before = batch_counters(metrics)
                row = drive(call, inputs[:n], expected, remote.close)  # type: ignore[attr-defined]
                after = batch_counters(metrics)
                row["server_avg_batch"] = (after[0] - before[0]) / max(after[1] - before[1], 1)
                batching, _, inst = mode.partition(":")
                name = f"serve {args.protocol}, batching {batching}, {inst or 1} inst."
                rows.append({"mode": name, **row})
            remote.close()  # type: ignore[attr-defined]
        finally:
            stop_server(proc)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of the rows."""
    head = "| mode | clients | requests | req/s | p50 ms | p99 ms | server avg batch | max abs err | wrong |"
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        batch = f"{r['server_avg_batch']:.2f}" if "server_avg_batch" in r else "-"
        lines.append(
            f"| {r['mode']} | {r['clients']} | {r['requests']} | {r['throughput']:.1f} | "
            f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {batch} | {r['max_abs_err']:.1e} | {r['mismatches']} |"
        )
    return "\n".join(lines)


def main() -> None:
    """Parse arguments, measure, print the table (and write JSON)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("bundle", type=Path)
    p.add_argument("--clients", default="1,4,16")
    p.add_argument("--requests", type=int, default=16, help="requests per client")
    p.add_argument("--modes", default="dynamic,off", help="server modes: dynamic|off[:instances],...")
    p.add_argument("--protocol", choices=["http", "grpc"], default="http")
    p.add_argument("--port", type=int, default=8300)
    p.add_argument("--threads", type=int, help="ONNX Runtime threads of the in-process engine")
    p.add_argument("--serve-python", default=sys.executable, help="interpreter that runs simokit serve")
    p.add_argument("--json", type=Path, help="also write the rows here")
    args = p.parse_args()
    rows = run(args)
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()

"""A real `simokit serve` on 127.0.0.1 for tests: which interpreter runs it, free ports, start, stop.

SIMOKIT_SERVE_PYTHON names an interpreter whose environment satisfies nvidia-pytriton's pins
(numpy<2); the tests run in this one. Without pytriton there the serve tests skip, unless
SIMOKIT_REQUIRE_SERVE=1 (CI) turns the skip into a failure; so does a missing tritonclient, which the
dev extra installs.
"""

from __future__ import annotations

import importlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

REQUIRE = "SIMOKIT_REQUIRE_SERVE"


def unavailable(reason: str) -> NoReturn:
    """Skip, or fail where SIMOKIT_REQUIRE_SERVE=1 says the serve tests must run."""
    if os.environ.get(REQUIRE) == "1":
        pytest.fail(f"{reason} ({REQUIRE}=1)", pytrace=False)
    pytest.skip(reason)


def require_module(name: str) -> ModuleType:
    """Import `name` (tritonclient, protobuf), or skip / fail as `unavailable` says."""
    try:
        return importlib.import_module(name)
    except ImportError:
        unavailable(f"{name.split('.')[0]} not installed (pip install -e '.[dev]')")


def serve_python() -> str:
    """The interpreter that runs `simokit serve`, after checking it can import pytriton."""
    python = os.environ.get("SIMOKIT_SERVE_PYTHON", sys.executable)
    probe = subprocess.run([python, "-c", "import pytriton"], capture_output=True, timeout=120)
    if probe.returncode:
        unavailable(f"nvidia-pytriton not importable by {python} (pip install 'simokit[serve]')")
    return python


def free_port() -> int:
    """A port P with P, P + 1 and P + 2 free on 127.0.0.1 (HTTP, gRPC, metrics)."""
    for _ in range(20):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            for p in (port + 1, port + 2):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
            return port
        except OSError:
            continue
    pytest.skip("no three free consecutive ports")


@dataclass
class Server:
    """A started `simokit serve` process; its output is read by a thread into `lines`."""

    proc: subprocess.Popen[str]
    port: int
    name: str
    lines: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    def url(self, protocol: str = "http") -> str:
        """The model's triton:// (HTTP) or triton+grpc:// URL."""
        if protocol == "grpc":
            return f"triton+grpc://127.0.0.1:{self.port + 1}/{self.name}"
        return f"triton://127.0.0.1:{self.port}/{self.name}"

    def stop(self, sig: int = signal.SIGINT, timeout: float = 60) -> tuple[int, str, float]:
        """Send `sig`; (exit code, all output, seconds until exit)."""
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
        seconds = time.monotonic() - t0
        if self.reader is not None:
            self.reader.join(timeout=10)
        return int(self.proc.returncode), "".join(self.lines), seconds


def start_serve(bundle: Path, name: str, *args: str) -> Server:
    """`simokit serve bundle --name name args` on 127.0.0.1, returned once it printed 'ready'."""
    python = serve_python()
    port = free_port()
    cmd = [python, "-m", "simokit.cli", "serve", str(bundle), "--port", str(port), "--host", "127.0.0.1"]
    proc = subprocess.Popen(
        [*cmd, "--name", name, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    server = Server(proc, port, name)
    assert proc.stdout is not None
    for line in proc.stdout:
        server.lines.append(line)
        if line.startswith("ready"):
            break
    else:  # the server exited before it was ready
        proc.wait(timeout=30)
        last = "".join(server.lines).strip().splitlines() or ["no output"]
        unavailable(f"simokit serve could not start here: {last[-1]}")
    out = proc.stdout
    server.reader = threading.Thread(target=lambda: server.lines.extend(out), daemon=True)
    server.reader.start()
    return server

"""What `simokit serve` needs around the server: its environment, free ports, stop signals, errors.

Two traps, both measured here (pyenv CPython 3.11.7 beside a system libpython3.11 3.11.2):
1. Triton's Python-backend stub links libpython3.11.so.1.0 and the loader finds the system's copy,
   while sys.path hands it this interpreter's stdlib; the model then fails to load with
   "'_thread.RLock' object has no attribute '_recursion_count'". Putting this interpreter's own
   libpython directory first on LD_LIBRARY_PATH for the server process fixes it.
2. The stub of nvidia-pytriton 0.7 sends every output tensor as 0 bytes when it imports numpy >= 2
   (the model still loads and answers, with empty arrays). pytriton declares numpy<2; an install
   with --no-deps can break that, so serve refuses the combination up front.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sysconfig
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from simokit.errors import ConfigError


def libpython_dir() -> str | None:
    """The directory holding this interpreter's shared libpython, or None for a static build."""
    if not sysconfig.get_config_var("Py_ENABLE_SHARED"):
        return None
    libdir, soname = sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("INSTSONAME")
    if libdir and soname and (Path(libdir) / soname).is_file():
        return str(libdir)
    return None


def server_library_path(current: str | None, libdir: str | None) -> str | None:
    """LD_LIBRARY_PATH for the server: `libdir` first (once), then `current`."""
    if not libdir:
        return current
    rest = [p for p in (current or "").split(":") if p and p != libdir]
    return ":".join([libdir, *rest])


@contextmanager
def server_environment() -> Iterator[None]:
    """While the server process is started: this interpreter's libpython first on LD_LIBRARY_PATH."""
    before = os.environ.get("LD_LIBRARY_PATH")
    wanted = server_library_path(before, libpython_dir())
    if wanted is not None:
        os.environ["LD_LIBRARY_PATH"] = wanted
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("LD_LIBRARY_PATH", None)
        else:
            os.environ["LD_LIBRARY_PATH"] = before


def check_numpy(numpy_version: str, pytriton_requires: list[str]) -> None:
    """Refuse numpy >= 2 when nvidia-pytriton declares numpy<2 (its stub would send empty outputs)."""
    pins = [r for r in pytriton_requires if r.replace(" ", "").startswith("numpy") and "<2" in r]
    if pins and int(numpy_version.split(".")[0]) >= 2:
        raise ConfigError(
            f"nvidia-pytriton requires {pins[0].split(';')[0]} but numpy {numpy_version} is installed, "
            "and with it the server answers with empty outputs; serve from an environment with numpy<2 "
            "(a fresh `pip install 'simokit[serve]'` resolves it)"
        )


def require_pytriton() -> str:
    """nvidia-pytriton's version after checking it is installed and consistent with numpy."""
    import importlib.metadata

    import numpy as np

    try:
        version = importlib.metadata.version("nvidia-pytriton")
        import pytriton  # noqa: F401  # fails here rather than mid-start when its wheel is broken
    except (importlib.metadata.PackageNotFoundError, ImportError):
        raise ConfigError(
            "simokit serve needs nvidia-pytriton (Linux, glibc >= 2.35): pip install 'simokit[serve]'"
        ) from None
    check_numpy(np.__version__, importlib.metadata.requires("nvidia-pytriton") or [])
    return version


def start_failure(message: str, log: Path) -> str:
    """The useful part of a failed start: the error's first line and its root cause (a Python
    exception raised in the model stub), else the server log's last error line."""
    lines = [x.strip() for x in message.splitlines() if x.strip()]
    causes = [x for x in lines[1:] if re.match(r"^[A-Za-z_.]+(Error|Exception): ", x)]
    if not causes and log.is_file():  # Triton's error lines start with E<date>
        causes = [x for x in log.read_text(errors="replace").splitlines() if x[:1] == "E"][-1:]
    head = lines[0][:200] if lines else "no message"
    return head + (f" ... {causes[-1][:200]}" if causes else "")


def check_ports(host: str, port: int) -> None:
    """Refuse a --port whose HTTP, gRPC (+1) or metrics (+2) port is taken, before starting anything."""
    for p in (port, port + 1, port + 2):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT is free
            try:
                s.bind((host or "0.0.0.0", p))
            except OSError as exc:
                raise ConfigError(
                    f"cannot listen on {host}:{p} ({exc.strerror}); serve uses --port, +1 (gRPC) and "
                    "+2 (metrics): pick another --port"
                ) from None


@contextmanager
def stop_signals() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into KeyboardInterrupt in the main thread while serving."""
    # SIGTERM (systemd, Kubernetes) stops like Ctrl-C; SIGINT is re-armed because a shell starts
    # background jobs with it ignored.
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        for s in (signal.SIGINT, signal.SIGTERM):  # one stop is enough: a second would cut shutdown short
            signal.signal(s, signal.SIG_IGN)
        raise KeyboardInterrupt

    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


@contextmanager
def signals_ignored() -> Iterator[None]:
    """Ignore SIGINT and SIGTERM in the main thread while the server shuts down."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)

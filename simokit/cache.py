"""Where simokit keeps generated data, trained checkpoints and other cached artefacts."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def cache_root() -> Path:
    """Return the cache directory: $SIMOKIT_CACHE, else ~/.cache/simokit (created on demand)."""
    root = Path(os.environ.get("SIMOKIT_CACHE", Path.home() / ".cache" / "simokit")).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def config_key(obj: Any, length: int = 16) -> str:
    """Return a short stable hash of a JSON-serialisable object, used to name cache entries."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside `final`; rename it onto `final` only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.exists():  # mkstemp made it 0600: published files get the modes a plain open() gives
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def staged_dir(final: Path) -> Iterator[Path]:
    """A temporary directory beside `final`, published onto it if the block succeeds, else removed."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        yield tmp
        publish_dir(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def publish_dir(tmp: Path, final: Path) -> None:
    """Move a finished temporary directory (a bundle, a model repository) to `final`, replacing an old one."""
    # The old copy is moved aside first, so at most for a moment neither name is complete on disk;
    # a reader (a robot, a polling Triton) sees the old directory or the new one, never a half one.
    # mkdtemp made it 0700: a Triton container or robot service running as another user could not
    # read the published directory, so it gets the mode a plain mkdir() gives
    os.chmod(tmp, 0o777 & ~_umask())
    old = final.with_name(f".{final.name}.old")
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    if old.exists():
        shutil.rmtree(old)


def _umask() -> int:
    """The process umask (reading it means setting it; it is put straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask

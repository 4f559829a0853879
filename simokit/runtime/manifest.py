"""Every file of a bundle (or model repository) with its size and SHA-256, kept in its meta.json.

A copy interrupted on its way to the robot leaves a truncated graph that ONNX Runtime reports as
an unreadable protobuf, or worse, a bundle whose stored verification results look fine. Sizes are
checked whenever a bundle is opened (one stat per file); hashes when asked (`inspect --verify`,
`run --verify`), since they read every byte.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from simokit.errors import BundleError

META_FILE = "meta.json"
FILES_KEY = "files"
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_table(root: Path, names: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """{relative path: {"bytes", "sha256"}} for `names`, or every file under `root` but its meta.json."""
    if names is None:
        paths = sorted(p for p in root.rglob("*") if p.is_file() and p != root / META_FILE)
        names = [p.relative_to(root).as_posix() for p in paths]
    return {rel: {"bytes": (root / rel).stat().st_size, "sha256": sha256_file(root / rel)} for rel in names}


def record_files(root: Path, names: list[str] | None = None) -> None:
    """Add `names` (default: every file) to the table in `root`/meta.json, which is rewritten atomically.

    A command that adds files to a published bundle (calibration, an engine build) records just
    those, so caches that a runtime rewrites on its own (ONNX Runtime's TensorRT engine cache)
    never enter the table.
    """
    meta_path = root / META_FILE
    data = json.loads(meta_path.read_text())
    table = {} if names is None else dict(data.get(FILES_KEY, {}))
    table.update(file_table(root, names))
    data[FILES_KEY] = dict(sorted(table.items()))
    tmp = meta_path.with_name(f".{meta_path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, meta_path)


def check_sizes(root: Path, files: dict[str, dict[str, Any]] | None) -> None:
    """BundleError naming the first recorded file that is missing or has another size (stat only)."""
    for rel, entry in (files or {}).items():
        path = root / rel
        if not path.is_file():
            raise BundleError(f"{path}: missing (the bundle lists it); copy the whole bundle again")
        size = path.stat().st_size
        if size != entry["bytes"]:
            raise BundleError(
                f"{path}: {size} bytes, but the bundle recorded {entry['bytes']} "
                "(truncated or altered copy); copy the whole bundle again"
            )


def verify_hashes(root: Path, files: dict[str, dict[str, Any]] | None) -> list[str]:
    """One line per recorded file whose SHA-256 differs from meta.json's (empty when all match)."""
    bad = []
    for rel, entry in (files or {}).items():
        path = root / rel
        if not path.is_file():
            bad.append(f"{rel}: missing")
        elif (got := sha256_file(path)) != entry["sha256"]:
            bad.append(f"{rel}: sha256 {got[:12]}... differs from the recorded {entry['sha256'][:12]}...")
    return bad


def verify_folder(root: Path) -> int:
    """Check every file `root`/meta.json records, bytes and SHA-256; BundleError naming each that differs.

    Works on bundles, routed bundles (the table covers the domain folders) and Triton model
    directories alike. Returns how many files were checked.
    """
    meta_path = root / META_FILE
    try:
        files = json.loads(meta_path.read_text()).get(FILES_KEY)
    except (OSError, ValueError, AttributeError) as exc:
        raise BundleError(f"{meta_path}: unreadable ({type(exc).__name__}); copy the bundle again") from None
    if not files:
        raise BundleError(f"{root}: meta.json records no file hashes (an older bundle); rebuild it")
    bad = verify_hashes(root, files)
    if bad:
        raise BundleError(f"{root}: {len(bad)} file(s) differ from meta.json: " + "; ".join(bad))
    return len(files)


def files_line(root: Path, files: dict[str, dict[str, Any]] | None) -> str:
    """One line for `simokit inspect`: how many files are recorded and that their sizes match."""
    if not files:
        return "files: no sizes or hashes recorded (an older bundle)"
    total = sum(int(e["bytes"]) for e in files.values())
    return f"files: {len(files)} recorded ({total / 1e6:.1f} MB), sizes match; --verify checks SHA-256"

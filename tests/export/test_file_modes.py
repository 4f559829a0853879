"""Published files get the modes a plain open()/mkdir() would give, so another user can read them.

Temporary files and directories are created 0600/0700 (mkstemp, mkdtemp); a bundle, a Triton model
repository or a checkpoint renamed into place kept those modes, and a Triton container or robot
service running as another user could not read model.onnx.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from tiny_models import tiny_model

from simokit.cache import atomic_path, publish_dir
from simokit.data import PALETTE
from simokit.export.bundle import write_bundle
from simokit.export.onnx import ExportSpec
from simokit.export.triton import TritonOptions, export_triton


@pytest.fixture(params=[0o022, 0o027])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_path_publishes_with_the_umask_mode(tmp_path: Path, umask: int) -> None:
    with atomic_path(tmp_path / "a.json") as tmp:
        tmp.write_text("{}")
    assert _mode(tmp_path / "a.json") == 0o666 & ~umask


def test_publish_dir_gives_the_directory_the_umask_mode(tmp_path: Path, umask: int) -> None:
    import tempfile

    tmp = Path(tempfile.mkdtemp(dir=tmp_path))
    publish_dir(tmp, tmp_path / "out")
    assert _mode(tmp_path / "out") == 0o777 & ~umask


def test_bundle_and_triton_repository_are_readable_by_others(tmp_path: Path, umask: int) -> None:
    frames = np.random.default_rng(0).integers(0, 256, size=(2, 56, 56, 3), dtype=np.uint8)
    spec = ExportSpec(("seg", "depth", "normal"), 56, 56)
    bundle = write_bundle(tmp_path / "bundle", tiny_model(seed=1), spec, frames, ("a",) * 11, PALETTE)
    repo = export_triton(bundle, tmp_path / "repo", TritonOptions(None, "onnxruntime", 8, 1, 100)).parent
    for root in (bundle, repo):
        paths = [root, *root.rglob("*")]
        files = {p.relative_to(tmp_path): _mode(p) for p in paths if p.is_file()}
        dirs = {p.relative_to(tmp_path): _mode(p) for p in paths if p.is_dir()}
        assert files and all(m == 0o666 & ~umask for m in files.values()), files
        assert all(m == 0o777 & ~umask for m in dirs.values()), dirs

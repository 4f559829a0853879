"""The robot install: runtime commands work with every build-side package unimportable; build ones say so."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from simokit.export.bundle import write_bundle
from simokit.export.onnx import ExportSpec, export_onnx
from simokit.models import HeadConfig, MultiTaskModel, build_encoder, build_head

BLOCK = ["torch", "safetensors", "onnx", "onnxslim", "matplotlib", "transformers"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    heads = {"depth": build_head(HeadConfig("linear", 1, "exp"), 48)}
    model = MultiTaskModel(build_encoder("vitnano14"), heads).eval()
    frames = np.zeros((1, 56, 56, 3), np.uint8)
    root = tmp_path_factory.mktemp("r")
    spec = ExportSpec(("depth",), 56, 56, "uint8")
    expert = export_onnx(model, spec, root / "expert.onnx")  # the 'separate experts' profile compares
    return write_bundle(root / "b", model, spec, frames, files={"experts/depth.onnx": expert})


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys\n"
        f"for name in {BLOCK!r}: sys.modules[name] = None  # 'import torch' etc. now fail\n"
        "from simokit.cli import main\n"
        f"rc = main({list(args)!r})\n"
        f"leaked = [m for m in {BLOCK!r} if sys.modules.get(m) is not None]\n"
        "print('leaked', leaked)\n"
        "sys.exit(rc)\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_inspect_and_profile_run_without_the_build_side(bundle: Path) -> None:
    proc = _cli("inspect", str(bundle))
    assert proc.returncode == 0, proc.stderr
    assert "tasks: depth" in proc.stdout and "leaked []" in proc.stdout
    proc = _cli("profile", str(bundle), "--batches", "1", "--warmup", "1", "--iters", "2", "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    assert "merged" in proc.stdout and "leaked []" in proc.stdout


def test_build_side_commands_name_the_extra(tmp_path: Path) -> None:
    proc = _cli("build", "--out", str(tmp_path / "x"))
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()  # one line, no traceback
    assert re.fullmatch(
        r"simokit build: error: needs (torch|onnx), part of the build side; install it with: "
        r"pip install 'simokit\[build\]' \(bundle, run, profile BUNDLE and inspect do not\)",
        line,
    ), line
    assert not (tmp_path / "x").exists()

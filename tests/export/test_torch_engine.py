"""The torch reference engine: on the build side, opened by name through the runtime's backend table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tiny_models import tiny_model

from simokit.export.bundle import write_bundle
from simokit.export.onnx import ExportSpec
from simokit.export.torch_engine import CHECKPOINT_FILE, TorchEngine
from simokit.models import MultiTaskModel
from simokit.models.checkpoint import CheckpointMeta, save_checkpoint
from simokit.runtime import load
from simokit.runtime.capabilities import BACKENDS

TASKS = ("seg", "depth", "normal")


def _frames(n: int) -> np.ndarray:
    return np.random.default_rng(n).integers(0, 256, size=(n, 56, 56, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model: MultiTaskModel = tiny_model(seed=3)
    out = write_bundle(tmp_path_factory.mktemp("t") / "bundle", model, ExportSpec(TASKS, 56, 56), _frames(1))
    meta = CheckpointMeta(
        kind="merged",
        encoder=model.encoder.config.to_dict(),
        heads={t: h.cfg.to_dict() for t, h in model.heads.items()},  # type: ignore[union-attr]
        input_size=(56, 56),
    )
    heads = {t: h.state_dict() for t, h in model.heads.items()}
    save_checkpoint(out / CHECKPOINT_FILE, meta, model.encoder.state_dict(), heads)
    return out


def test_the_table_names_the_torch_opener_by_string() -> None:
    assert BACKENDS["torch"].opener == "simokit.export.torch_engine:open_engine"
    assert not BACKENDS["torch"].routes


def test_torch_engine_matches_onnx_runtime(bundle: Path) -> None:
    reference = load(bundle, backend="torch")
    assert isinstance(reference, TorchEngine) and reference.describe().startswith("torch")
    frames = _frames(2)
    got, want = reference.infer(frames), load(bundle).infer(frames)
    for task in TASKS:
        np.testing.assert_allclose(got[task], want[task], rtol=0, atol=1e-4)

"""`simokit profile BUNDLE --data`: merged vs expert graphs on labelled data, through the runtime path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from simokit.cli import main
from simokit.errors import DataError
from simokit.export.bundle import write_bundle
from simokit.export.onnx import ExportSpec, export_onnx
from simokit.models import HeadConfig, MultiTaskModel, build_encoder, build_head
from simokit.profile.accuracy import bundle_accuracy


def _nyu(root: Path, n: int = 4) -> Path:
    rng = np.random.default_rng(0)
    for name in ("image", "depth"):
        (root / "test" / name).mkdir(parents=True)
    for i in range(n):
        np.save(root / "test" / "image" / f"{i}.npy", rng.random((56, 56, 3)).astype(np.float32))
        np.save(root / "test" / "depth" / f"{i}.npy", rng.uniform(1.0, 5.0, (56, 56, 1)))
    return root


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("acc")
    spec = ExportSpec(("depth",), 56, 56, "uint8")
    torch.manual_seed(0)
    merged = MultiTaskModel(
        build_encoder("vitnano14"), {"depth": build_head(HeadConfig("linear", 1, "exp"), 48)}
    )
    torch.manual_seed(1)
    expert = MultiTaskModel(
        build_encoder("vitnano14"), {"depth": build_head(HeadConfig("linear", 1, "exp"), 48)}
    )
    graph = export_onnx(expert.eval(), spec, root / "expert.onnx")
    frames = np.zeros((1, 56, 56, 3), np.uint8)
    return write_bundle(root / "b", merged.eval(), spec, frames, files={"experts/depth.onnx": graph})


def test_merged_and_expert_metrics_and_score(bundle: Path, tmp_path: Path) -> None:
    data = _nyu(tmp_path / "nyu")
    result = bundle_accuracy(bundle, str(data))
    merged, expert = result["merged"]["depth"], result["experts"]["depth"]
    assert result["images"] == 4 and set(merged) == {"abs_err", "abs_rel", "delta1"}
    assert merged["abs_err"] != expert["abs_err"]  # two different graphs really ran
    # the depth score: errors as expert/merged, delta1 as merged/expert (0 when the expert has none)
    ratios = [expert["abs_err"] / merged["abs_err"], expert["abs_rel"] / merged["abs_rel"]]
    ratios.append(merged["delta1"] / expert["delta1"] if expert["delta1"] > 0 else 0.0)
    assert result["scores"]["depth"] == pytest.approx(np.mean(ratios), rel=1e-9)
    assert result["mean"] == result["scores"]["depth"]
    assert (
        main(["profile", str(bundle), "--batches", "1", "--iters", "2", "--warmup", "1", "--data", str(data)])
        == 0
    )


def test_unlabelled_or_wrong_data_is_refused(bundle: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="needs labelled"):
        bundle_accuracy(bundle, "none")
    with pytest.raises(DataError, match="neither"):
        bundle_accuracy(bundle, str(tmp_path))

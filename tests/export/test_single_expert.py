"""The single-expert graph: one output at the head's native size, ORT equal to torch, fixed size."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from simokit.errors import ConfigError
from simokit.export.single_expert import export_single_expert
from simokit.models import HeadConfig, LinearHead, VitConfig, build_encoder, build_head
from simokit.models.heads import registry
from simokit.models.importers import ImportedModel
from simokit.runtime.onnx_session import session_for

REG = VitConfig(embed_dim=48, depth=2, num_heads=2, img_size=56, num_register_tokens=4,
                interpolate_antialias=True, interpolate_offset=0.0)  # fmt: skip


class HalfSizeHead(LinearHead):
    """A linear head whose source model returns half-resolution output."""

    def native_size(self, height: int, width: int) -> tuple[int, int]:
        return height // 2, width // 2


def _imported(vit: VitConfig, head: HeadConfig, seed: int = 0) -> ImportedModel:
    torch.manual_seed(seed)
    encoder = build_encoder(vit)
    state = build_head(head, vit.embed_dim).state_dict()
    return ImportedModel("test", vit, encoder.state_dict(), "depth", head, state, mean=(0.5, 0.5, 0.5),
                         std=(0.2, 0.3, 0.4), input_size=(56, 56))  # fmt: skip


def _torch_reference(model: ImportedModel, x: np.ndarray, out_size: tuple[int, int]) -> np.ndarray:
    """Eager encoder (its own position resampling) and head at `out_size`."""
    encoder = build_encoder(model.vit).eval()
    encoder.load_state_dict(model.encoder)
    head = build_head(model.head, model.vit.embed_dim).eval()  # type: ignore[arg-type]
    head.load_state_dict(model.head_state)
    with torch.no_grad():
        feats = encoder.get_intermediate_layers(
            torch.from_numpy(x), n=[1], reshape=True, return_class_token=True
        )
        return head(list(feats), out_size).numpy()


def test_register_model_at_a_non_square_size_matches_eager_torch(tmp_path: Path) -> None:
    """Antialiased position resampling (no ONNX op) is baked for the traced size."""
    model = _imported(REG, HeadConfig("linear", 1, "exp"))
    done = export_single_expert(model, tmp_path / "d.onnx", size=(70, 84))
    x = np.random.default_rng(0).standard_normal((3, 3, 70, 84)).astype(np.float32)
    session = session_for(done.path)
    got = session.run(None, {"image": x})[0]
    assert [o.name for o in session.get_outputs()] == ["depth"] and got.shape == (3, 1, 70, 84)
    np.testing.assert_allclose(got, _torch_reference(model, x, (70, 84)), rtol=1e-4, atol=1e-5)
    props = {p.key: p.value for p in onnx.load(str(done.path)).metadata_props}
    assert json.loads(props["simokit.std"]) == [0.2, 0.3, 0.4] and done.max_error <= 1e-4


def test_output_is_at_the_heads_native_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.HEADS, "linear", HalfSizeHead)
    vit = VitConfig(embed_dim=48, depth=2, num_heads=2, img_size=56)
    model = _imported(vit, HeadConfig("linear", 2, "none"))
    done = export_single_expert(model, tmp_path / "h.onnx")
    assert done.size == (56, 56) and done.output_shape == (2, 2, 28, 28)
    x = np.random.default_rng(1).standard_normal((1, 3, 56, 56)).astype(np.float32)
    got = session_for(done.path).run(None, {"image": x})[0]
    np.testing.assert_allclose(got, _torch_reference(model, x, (28, 28)), rtol=0, atol=1e-4)


def test_encoder_without_head_and_bad_size_are_refused(tmp_path: Path) -> None:
    model = _imported(REG, HeadConfig("linear", 1, "exp"))
    with pytest.raises(ConfigError, match="not a multiple of the patch size 14"):
        export_single_expert(model, tmp_path / "x.onnx", size=(60, 56))
    base = ImportedModel("test", REG, model.encoder)
    with pytest.raises(ConfigError, match="encoder without a task head"):
        export_single_expert(base, tmp_path / "x.onnx")

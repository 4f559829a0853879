"""`simokit import` and `simokit inspect SRC`: checkpoints, the single-expert ONNX graph, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from simokit.cli import main
from simokit.errors import ConfigError
from simokit.models import HeadConfig, build_encoder
from simokit.models.checkpoint import load_checkpoint
from simokit.models.importers import IMPORTERS, ImportedModel, Source
from simokit.runtime.onnx_session import session_for

transformers = pytest.importorskip("transformers")


class Custom:
    """A class a checkpoint can only be unpickled with by running this module's code."""

    def __init__(self) -> None:
        self.weights = torch.zeros(2)


def _hf_seg(folder: Path, registers: bool) -> tuple[Any, torch.nn.Conv2d]:
    """A random tiny HF DINOv2 (+ registers) with a 3-class 1x1 conv classifier, save_pretrained style."""
    torch.manual_seed(0)
    kwargs = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=1, image_size=56, patch_size=14)
    if registers:
        config = transformers.Dinov2WithRegistersConfig(num_register_tokens=4, **kwargs)
        backbone = transformers.Dinov2WithRegistersModel(config).eval()
    else:
        config = transformers.Dinov2Config(**kwargs)
        backbone = transformers.Dinov2Model(config).eval()
    conv = torch.nn.Conv2d(64, 3, 1).eval()
    state = {f"dinov2.{k}": v for k, v in backbone.state_dict().items()}
    state |= {f"classifier.classifier.{k}": v for k, v in conv.state_dict().items()}
    folder.mkdir()
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    labels = {"id2label": {"0": "floor", "1": "wall", "2": "object"}}
    (folder / "config.json").write_text(json.dumps(config.to_dict() | labels))
    return backbone, conv


def _reference(backbone: Any, conv: torch.nn.Conv2d, x: torch.Tensor, registers: int) -> np.ndarray:
    with torch.no_grad():
        tokens = backbone(pixel_values=x).last_hidden_state[:, 1 + registers :]
        grid = tokens.reshape(x.shape[0], x.shape[2] // 14, x.shape[3] // 14, -1).permute(0, 3, 1, 2)
        return F.interpolate(conv(grid), size=x.shape[2:], mode="bilinear", align_corners=False).numpy()


@pytest.mark.parametrize(("registers", "size"), [(False, None), (True, "70x84")])
def test_import_writes_checkpoint_and_onnx_equal_to_the_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], registers: bool, size: str | None
) -> None:
    backbone, conv = _hf_seg(tmp_path / "hf", registers)
    out, onnx = tmp_path / "seg.safetensors", tmp_path / "seg.onnx"
    argv = ["import", str(tmp_path / "hf"), "--out", str(out), "--onnx", str(onnx)]
    assert main(argv + (["--size", size] if size else [])) == 0
    printed = capsys.readouterr().out
    assert "hf_dinov2_seg: seg expert, linear head, 3 classes" in printed and "output seg (2, 3," in printed
    ck = load_checkpoint(out)
    assert (ck.meta.kind, ck.meta.tasks, ck.meta.classes) == ("expert", ("seg",), ("floor", "wall", "object"))
    h, w = (70, 84) if size else (56, 56)
    x = np.random.default_rng(3).standard_normal((1, 3, h, w)).astype(np.float32)
    session = session_for(onnx)
    assert [o.name for o in session.get_outputs()] == ["seg"]
    got = session.run(None, {"image": x})[0]
    ref = _reference(backbone, conv, torch.from_numpy(x), 4 if registers else 0)
    assert got.shape == ref.shape == (1, 3, h, w)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-4)


def test_inspect_source_and_imported_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _hf_seg(tmp_path / "hf", registers=True)
    assert main(["inspect", str(tmp_path / "hf")]) == 0
    text = capsys.readouterr().out
    assert "format: hf_dinov2_seg" in text
    assert "dim 64, depth 2, heads 1, patch 14, registers 4" in text
    assert "task seg, head linear, blocks read [-1], features after the final norm, CLS not used" in text
    assert "classes (3): floor, wall, object" in text
    assert main(["import", str(tmp_path / "hf"), "--out", str(tmp_path / "e.safetensors")]) == 0
    capsys.readouterr()
    assert main(["inspect", str(tmp_path / "e.safetensors")]) == 0
    text = capsys.readouterr().out
    assert "simokit checkpoint" in text and '"format": "hf_dinov2_seg"' in text


def _timm_base(path: Path) -> None:
    state = build_encoder("vitnano14").state_dict()
    state.pop("mask_token")
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))


def _fails(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def test_base_imports_but_is_refused_where_an_expert_is_needed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _timm_base(tmp_path / "timm.safetensors")
    out = str(tmp_path / "b.safetensors")
    assert main(["import", str(tmp_path / "timm.safetensors"), "--out", out]) == 0
    assert "timm: base encoder" in capsys.readouterr().out and load_checkpoint(out).meta.kind == "base"
    err = _fails(["import", str(tmp_path / "timm.safetensors"), "--out", out, "--onnx", "x.onnx"], capsys)
    assert "encoder without a task head" in err
    err = _fails(["import", str(tmp_path / "timm.safetensors"), "--out", out, "--task", "seg"], capsys)
    assert "has no 'seg' head; its tasks: none (a base encoder)" in err


def test_unrecognised_file_names_its_keys_and_the_formats(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.save({"optimizer_state": torch.zeros(1), "epoch": 3}, tmp_path / "odd.pth")
    err = _fails(["import", str(tmp_path / "odd.pth"), "--out", str(tmp_path / "o.safetensors")], capsys)
    assert "top-level keys: optimizer_state, epoch" in err and "known formats:" in err and "timm" in err
    assert "hf_dinov2_seg" in _fails(["inspect", str(tmp_path / "odd.pth")], capsys)


def test_pickle_needing_code_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.save({"model": Custom()}, tmp_path / "code.pth")
    err = _fails(["import", str(tmp_path / "code.pth"), "--out", str(tmp_path / "o.safetensors")], capsys)
    assert "needs arbitrary code to unpickle, which simokit never runs" in err


class _HeadOnly:
    """A head file format that records no task and needs --backbone for its encoder."""

    name = "test_head_only"
    description = "test format"
    takes_backbone = True

    def detect(self, source: Source) -> bool:
        return "probe.weight" in source.tensors

    def convert(self, source: Source) -> list[ImportedModel]:
        if source.backbone is None:
            raise ConfigError(f"{source.path} holds only a head; give its encoder with --backbone")
        base = source.backbone
        head = HeadConfig("linear", 1, "none")
        state = {"conv.weight": source.tensors["probe.weight"], "conv.bias": torch.zeros(1)}
        return [ImportedModel(self.name, base.vit, base.encoder, None, head, state)]


def test_task_must_be_named_and_backbone_reaches_the_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(IMPORTERS, _HeadOnly.name, _HeadOnly())
    _timm_base(tmp_path / "timm.safetensors")
    torch.save({"probe.weight": torch.randn(1, 48, 1, 1)}, tmp_path / "head.pth")
    base = ["import", str(tmp_path / "head.pth"), "--out", str(tmp_path / "e.safetensors")]
    assert "give its encoder with --backbone" in _fails(base, capsys)
    with_backbone = [*base, "--backbone", str(tmp_path / "timm.safetensors")]
    assert "cannot be inferred from the file; name it with --task" in _fails(with_backbone, capsys)
    assert main([*with_backbone, "--task", "depth", "--onnx", str(tmp_path / "d.onnx")]) == 0
    assert load_checkpoint(tmp_path / "e.safetensors").meta.tasks == ("depth",)
    assert [o.name for o in session_for(tmp_path / "d.onnx").get_outputs()] == ["depth"]

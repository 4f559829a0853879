"""`simokit import` (checkpoint and single-expert ONNX graph) and `simokit inspect SRC` on a tiny file of
every importable format: both succeed and name the detected format and the head kind."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from models.importers.da_reference import official_head_state, save_hf_depth_anything
from models.importers.dpt_reference import hf_dpt_model, mmcv_dpt_state, random_encoder
from models.importers.linear_reference import random_bn, random_conv, tiny_backbone
from safetensors.torch import save_file

from simokit.cli import main
from simokit.models import build_encoder
from simokit.models.checkpoint import load_checkpoint
from simokit.runtime.onnx_session import session_for

transformers = pytest.importorskip("transformers")

DIM = 64
# what each builder writes: (source path, extra arguments for import and inspect)
Built = tuple[Path, list[str]]


def _simo(folder: Path, arch: str) -> Built:
    encoder = random_encoder(DIM, 4, seed=1)
    g = torch.Generator().manual_seed(2)
    if arch == "linear":
        head = {**random_bn(DIM, g), **random_conv("conv_seg", 3, DIM, g)}
        tasks: dict = {"segment_semantic": {"num_classes": 3}}
    else:
        head = mmcv_dpt_state(DIM, [DIM // 2 ** (5 - i) for i in range(4)], 16, "project", "depth")
        tasks = {"depth": {"min_depth": 0.01, "max_depth": 10.0}}
    task = next(iter(tasks))
    state = {f"backbone.{k}": v for k, v in encoder.state_dict().items()}
    state |= {f"decoders.{task}.{k}": v for k, v in head.items()}
    blocks = [3] if arch == "linear" else [0, 1, 2, 3]
    args = {"arch_name": "vit_small", "head_tasks": tasks, "head_archs": arch, "out_index": blocks}
    path = folder / f"simo_{arch}.pth"
    torch.save({"model_class": "MTLDinoV2", "constructor_args": args, "state_dict": state}, path)
    return path, []


def _dinov2_backbone(folder: Path, depth: int) -> Path:
    path = folder / "dinov2_vits14_pretrain.pth"
    torch.save(random_encoder(DIM, depth).state_dict(), path)
    return path


def _dinov2_heads(folder: Path) -> Built:
    backbone = _dinov2_backbone(folder, 2)
    head = random_conv("conv_depth", 256, 2 * DIM, torch.Generator().manual_seed(3), scale=0.5)
    path = folder / "dinov2_vits14_nyu_linear_head.pth"
    torch.save({"state_dict": {f"decode_head.{k}": v for k, v in head.items()}}, path)
    return path, ["--backbone", str(backbone)]


def _dinov2_dpt(folder: Path) -> Built:
    backbone = _dinov2_backbone(folder, 12)
    head = mmcv_dpt_state(DIM, [DIM // 2 ** (3 - i) for i in range(4)], 16, "project", "depth")
    path = folder / "dinov2_vits14_nyu_dpt_head.pth"
    torch.save({"state_dict": {f"decode_head.{k}": v for k, v in head.items()}}, path)
    assert backbone.parent == path.parent
    return path, []  # the hub's backbone file beside the head file is found without --backbone


def _depth_anything(folder: Path) -> Built:
    state = {f"pretrained.{k}": v for k, v in random_encoder(DIM, 8).state_dict().items()}
    head = official_head_state(DIM, [16, 24, 32, 32], 16, use_bn=False, use_cls=False)
    path = folder / "depth_anything_v2_vits.pth"
    torch.save(state | {f"depth_head.{k}": v for k, v in head.items()}, path)
    return path, []


def _hf_depth_anything(folder: Path) -> Built:
    save_hf_depth_anything(folder / "hf_da", "relative")
    return folder / "hf_da", []


def _hf_dpt(folder: Path) -> Built:
    hf_dpt_model().save_pretrained(folder / "hf_dpt")
    return folder / "hf_dpt", []


def _timm(folder: Path) -> Built:
    state = build_encoder("vitnano14").state_dict()
    state.pop("mask_token")
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "timm.safetensors"))
    return folder / "timm.safetensors", []


def _dinov2(folder: Path) -> Built:
    torch.save(tiny_backbone(depth=2).state_dict(), folder / "my_backbone.pth")
    return folder / "my_backbone.pth", []


def _hf_dinov2(folder: Path) -> Built:
    config = transformers.Dinov2Config(
        hidden_size=DIM, num_hidden_layers=2, num_attention_heads=1, image_size=56
    )
    transformers.Dinov2Model(config).save_pretrained(folder / "hf_dinov2")
    return folder / "hf_dinov2", []


# format, builder, task, head kind (None: a base encoder)
CASES: list[tuple[str, Callable[[Path], Built], str | None, str | None]] = [
    ("simo", lambda f: _simo(f, "linear"), "seg", "linear"),
    ("simo", lambda f: _simo(f, "dpt_small"), "depth", "dinov2_dpt"),
    ("dinov2_heads", _dinov2_heads, "depth", "linear_depth"),
    ("dinov2_dpt", _dinov2_dpt, "depth", "dinov2_dpt"),
    ("depth_anything", _depth_anything, "relative_depth", "da_dpt"),
    ("hf_depth_anything", _hf_depth_anything, "relative_depth", "da_dpt"),
    ("hf_dpt", _hf_dpt, "depth", "dinov2_dpt"),
    ("timm", _timm, None, None),
    ("dinov2", _dinov2, None, None),
    ("hf_dinov2", _hf_dinov2, None, None),
]


@pytest.mark.parametrize(("fmt", "build", "task", "kind"), CASES, ids=[f"{c[0]}-{c[3]}" for c in CASES])
def test_import_and_inspect_every_format(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    fmt: str,
    build: Callable[[Path], Built],
    task: str | None,
    kind: str | None,
) -> None:
    src, extra = build(tmp_path)
    out, onnx = tmp_path / "expert.safetensors", tmp_path / "expert.onnx"
    argv = ["import", str(src), "--out", str(out), *extra]
    assert main(argv + (["--onnx", str(onnx), "--size", "56"] if kind else [])) == 0
    printed = capsys.readouterr().out
    meta = load_checkpoint(out).meta
    if kind is None:
        assert f"{fmt}: base encoder" in printed and meta.kind == "base"
    else:
        assert f"{fmt}: {task} expert, {kind} head" in printed, printed
        assert meta.tasks == (task,) and meta.heads[task]["kind"] == kind
        assert "ORT vs torch" in printed
        assert [o.name for o in session_for(onnx).get_outputs()] == [task]
    assert main(["inspect", str(src), *extra]) == 0
    text = capsys.readouterr().out
    assert f"format: {fmt} (" in text, text
    if kind is None:
        assert "model 1: base encoder (no task head)" in text
    else:
        assert f"model 1: task {task}, head {kind}, " in text, text

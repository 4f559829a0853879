"""Official Depth Anything V1/V2 checkpoints import to an encoder and a da_dpt head that reproduce the
source model (a functional reference written from its formulas) at two input sizes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from da_reference import official_head_state, reference_depth
from onnx_check import assert_onnx_matches

from simokit.errors import CheckpointError, ConfigError
from simokit.models import HeadConfig, MultiTaskModel, build_encoder, build_head
from simokit.models.checkpoint import load_checkpoint, model_from_checkpoint
from simokit.models.heads import fold_linear_map
from simokit.models.importers import ImportedModel, detect, import_model, read_source, save_imported
from simokit.models.vit import VitConfig

DIM, DEPTH = 64, 8
WIDTHS, FEATURES = [16, 24, 32, 32], 16
SIZES = ((56, 56), (70, 84))


def _encoder_state(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    enc = build_encoder(VitConfig(img_size=56, embed_dim=DIM, depth=DEPTH, num_heads=1, init_values=1.0))
    state = enc.state_dict()
    return {k: v + 0.05 * torch.randn_like(v) if v.is_floating_point() else v for k, v in state.items()}


def _write(path: Path, use_bn: bool, use_cls: bool, trainer: bool = False) -> dict[str, torch.Tensor]:
    """An official-layout file at `path`; returns its head state (prefix removed)."""
    head = official_head_state(DIM, WIDTHS, FEATURES, use_bn, use_cls)
    state = {f"pretrained.{k}": v for k, v in _encoder_state().items()}
    state.update({f"depth_head.{k}": v for k, v in head.items()})
    if trainer:
        model = {f"module.{k}": v for k, v in state.items()}
        top = {"model": model, "optimizer": {"state": {}, "param_groups": [{"lr": 5e-6}]}, "epoch": 3}
        torch.save(top, path)
    else:
        torch.save(state, path)
    return head


def _simokit(model: ImportedModel) -> MultiTaskModel:
    encoder = build_encoder(model.vit)
    encoder.load_state_dict(model.encoder)
    assert model.head is not None and model.task is not None
    head = build_head(model.head, model.vit.embed_dim)
    head.load_state_dict(model.head_state)
    return MultiTaskModel(encoder, {model.task: head}).eval()


CASES = [
    # file name, use_bn, use_cls, trainer layout, version, blocks read, max_depth (None: relative)
    ("depth_anything_vits14.pth", False, False, False, "v1", (4, 5, 6, 7), None),
    ("depth_anything_v2_vits.pth", True, True, False, "v2", (1, 3, 5, 7), None),
    ("depth_anything_v2_metric_vkitti_vits.pth", False, False, False, "v2", (1, 3, 5, 7), 80.0),
    ("latest.pth", True, False, True, "v2", (1, 3, 5, 7), 20.0),
]


@pytest.mark.parametrize(("name", "use_bn", "use_cls", "trainer", "version", "blocks", "max_depth"), CASES)
def test_import_matches_the_source_model(
    tmp_path: Path,
    name: str,
    use_bn: bool,
    use_cls: bool,
    trainer: bool,
    version: str,
    blocks: tuple[int, ...],
    max_depth: float | None,
) -> None:
    head_state = _write(tmp_path / name, use_bn, use_cls, trainer)
    assert detect(read_source(tmp_path / name)).name == "depth_anything"
    model = import_model(tmp_path / name)
    assert model.task == ("relative_depth" if max_depth is None else "depth")
    assert model.head is not None and model.head.layers == blocks and model.head.use_cls == use_cls
    assert model.head.options["version"] == version and model.details["max_depth"] == max_depth
    net = _simokit(model)
    head = net.heads[model.task]
    for h, w in SIZES:
        x = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(h))
        with torch.no_grad():
            feats = net.encoder.get_intermediate_layers(x, n=list(blocks), return_class_token=True, norm=True)
            ref = reference_depth(head_state, list(feats), (h, w), version, max_depth)
            out = net(x)[model.task][:, 0]
        assert head.native_size(h, w) == tuple(ref.shape[-2:]) == (h, w)
        assert ref.abs().max() > 0.1  # the check is not on an all-zero map
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))
        assert_onnx_matches(model, x, ref, tmp_path)


@pytest.mark.parametrize("use_cls", [False, True])
def test_folding_a_feature_map_into_the_consumers_is_exact(tmp_path: Path, use_cls: bool) -> None:
    _write(tmp_path / "depth_anything_v2_vits.pth", True, use_cls)
    model = import_model(tmp_path / "depth_anything_v2_vits.pth")
    assert model.head is not None
    head = build_head(model.head, DIM).double().eval()
    head.load_state_dict(model.head_state)
    g = torch.Generator().manual_seed(1)
    feats = [
        (torch.randn(1, DIM, 4, 5, generator=g).double(), torch.randn(1, DIM, generator=g).double())
        for _ in range(4)
    ]
    maps = {}
    for consumer in head.consumers():
        A = torch.eye(DIM, dtype=torch.float64) + 0.1 * torch.randn(DIM, DIM, generator=g).double()
        maps[(consumer.layer, consumer.part)] = (A, 0.1 * torch.randn(DIM, generator=g).double())
    assert len(maps) == 4 * (2 if use_cls else 1)
    mapped = []
    for layer, (patch, cls) in zip(model.head.layers, feats, strict=True):
        A, c = maps[(layer, "patch")]
        patch = torch.einsum("ij,bjhw->bihw", A, patch) + c[:, None, None]
        if use_cls:
            A, c = maps[(layer, "cls")]
            cls = cls @ A.T + c
        mapped.append((patch, cls))
    with torch.no_grad():
        expected = head(mapped, (56, 70))
        for consumer in head.consumers():
            fold_linear_map(consumer, *maps[(consumer.layer, consumer.part)])
        folded = head(feats, (56, 70))
    torch.testing.assert_close(folded, expected, rtol=1e-5, atol=1e-5 * float(expected.abs().max()))


def test_forced_formats_and_what_is_assumed(tmp_path: Path) -> None:
    path = tmp_path / "my_model.pth"
    _write(path, False, False)
    auto = import_model(path)
    assert (
        auto.head is not None
        and auto.head.options["version"] == "v2"
        and "V2 assumed" in auto.details["assumed"]
    )
    v1 = import_model(path, fmt="depth_anything_v1")
    assert v1.head is not None and v1.head.layers == (4, 5, 6, 7) and v1.task == "relative_depth"
    outdoor = import_model(path, fmt="depth_anything_v2_outdoor")
    assert outdoor.task == "depth" and outdoor.head is not None and outdoor.head.options["max_depth"] == 80.0
    hub = tmp_path / "depth_anything_small"  # a V1 hub folder: the mixin's config.json and weights
    hub.mkdir()
    _write(hub / "pytorch_model.bin", False, False)
    (hub / "config.json").write_text(json.dumps({"encoder": "vits", "features": 64}))
    assert import_model(hub).details["head"] == "da_dpt (Depth Anything V1)"
    trainer = tmp_path / "latest.pth"
    _write(trainer, False, False, trainer=True)
    assert "max_depth 20.0 m (indoor) assumed" in import_model(trainer).details["assumed"]


def test_bad_files_and_options_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "depth_anything_v2_vits.pth"
    head = official_head_state(DIM, WIDTHS, FEATURES, False, False)
    del head["scratch.refinenet2.out_conv.weight"]
    state = {f"pretrained.{k}": v for k, v in _encoder_state().items()}
    torch.save({**state, **{f"depth_head.{k}": v for k, v in head.items()}}, path)
    with pytest.raises(CheckpointError, match=r"refinenet2\.out_conv\.weight"):
        import_model(path)
    opts = {"widths": WIDTHS, "version": "v3"}
    with pytest.raises(ConfigError, match="v1, v2"):
        build_head(HeadConfig("da_dpt", 1, "none", (1, 3, 5, 7), options=opts), DIM)
    with pytest.raises(ConfigError, match="unknown options"):
        build_head(HeadConfig("da_dpt", 1, "none", (1, 3, 5, 7), options={"widths": WIDTHS, "bins": 3}), DIM)
    with pytest.raises(ConfigError, match="activation"):
        build_head(HeadConfig("da_dpt", 1, "exp", (1, 3, 5, 7), options={"widths": WIDTHS}), DIM)


def test_the_written_checkpoint_rebuilds_the_same_model(tmp_path: Path) -> None:
    _write(tmp_path / "depth_anything_v2_metric_hypersim_vits.pth", True, True)
    model = import_model(tmp_path / "depth_anything_v2_metric_hypersim_vits.pth")
    out = save_imported(model, tmp_path / "expert.safetensors")
    checkpoint = load_checkpoint(out)
    assert checkpoint.meta.extra["import"]["max_depth"] == 20.0
    rebuilt = model_from_checkpoint(checkpoint).eval()
    x = torch.randn(1, 3, 56, 70, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x)["depth"], _simokit(model)(x)["depth"], rtol=0, atol=0)

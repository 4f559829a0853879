"""Task heads: configs, output shapes and activations, and exact folding of linear feature maps."""

from __future__ import annotations

import json

import pytest
import torch
from torch import Tensor

from simokit.errors import ConfigError, ShapeError
from simokit.models import DPTHead, HeadConfig, LinearHead, build_head, fold_linear_map
from simokit.models.heads import HEAD_KINDS, HEADS

DIM = 16


def _feats(layers: int, h: int = 4, w: int = 5, batch: int = 2, seed: int = 0) -> list[tuple[Tensor, Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(batch, DIM, h, w, generator=g), torch.randn(batch, DIM, generator=g))
        for _ in range(layers)
    ]


def _randomize_batch_norms(head: torch.nn.Module) -> None:
    """Give every BatchNorm non-trivial statistics and affine parameters, as after training."""
    with torch.no_grad():
        for module in head.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                assert module.running_mean is not None and module.running_var is not None
                module.running_mean.normal_(0, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.3)


def test_head_config_validation_and_json_round_trip() -> None:
    cfg = HeadConfig(kind="dpt", out_channels=1, activation="softplus", layers=(2, 5, 8, 11), use_cls=True)
    assert HeadConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert HeadConfig.from_dict({"kind": "linear", "out_channels": 3, "layers": [-1, -2]}).layers == (-1, -2)
    with pytest.raises(ConfigError, match="kind"):
        HeadConfig(kind="mlp", out_channels=1)
    with pytest.raises(ConfigError, match="activation"):
        HeadConfig(kind="linear", out_channels=1, activation="relu")
    with pytest.raises(ConfigError, match="4 encoder blocks"):
        HeadConfig(kind="dpt", out_channels=1)
    with pytest.raises(ConfigError, match="unknown"):
        HeadConfig.from_dict({"kind": "linear", "out_channels": 1, "dropout": 0.1})


def test_every_head_kind_has_a_registered_class() -> None:
    assert tuple(HEADS) == HEAD_KINDS
    # kinds that need more than a kind and a width to be built
    special = {"da_dpt": {"out_channels": 1, "layers": (0, 1, 2, 3), "options": {"widths": [4, 4, 4, 4]}}}
    for kind, head_type in HEADS.items():
        layers = (0, 1, 2, 3) if kind in ("dpt", "dinov2_dpt") else (-1,)
        fields = special.get(kind, {"out_channels": 1, "layers": layers})
        assert type(build_head(HeadConfig(kind=kind, **fields), DIM)) is head_type  # type: ignore[arg-type]


@pytest.mark.parametrize("activation", ["none", "softplus", "normalize", "sigmoid"])
@pytest.mark.parametrize("kind", ["linear", "dpt"])
def test_head_output_shape_and_activation(kind: str, activation: str) -> None:
    layers = (0, 1, 2, 3) if kind == "dpt" else (-1, -2)
    cfg = HeadConfig(kind=kind, out_channels=3, activation=activation, layers=layers, use_cls=True,
                     batch_norm=True, dpt_features=8)  # fmt: skip
    head = build_head(cfg, DIM).eval()
    assert isinstance(head, DPTHead if kind == "dpt" else LinearHead)
    with torch.no_grad():
        out = head(_feats(len(layers), h=3, w=5), (42, 70))
    assert out.shape == (2, 3, 42, 70)
    if activation == "softplus":
        assert (out > 0).all()
    if activation == "sigmoid":
        assert ((out > 0) & (out < 1)).all()
    if activation == "normalize":
        torch.testing.assert_close(out.norm(dim=1), torch.ones(2, 42, 70))


def test_head_rejects_wrong_features() -> None:
    head = build_head(HeadConfig(kind="linear", out_channels=2, layers=(-1,)), DIM)
    with pytest.raises(ShapeError, match="1 blocks"):
        head(_feats(2), (8, 8))
    with pytest.raises(ShapeError, match="reshape=True"):
        head([(torch.randn(2, 20, DIM), torch.randn(2, DIM))], (8, 8))


def test_consumers_cover_the_conv_inputs_exactly() -> None:
    head = build_head(HeadConfig(kind="linear", out_channels=2, layers=(-2, -1), use_cls=True), DIM)
    consumers = head.consumers()
    assert [(c.layer, c.part) for c in consumers] == [(-2, "patch"), (-2, "cls"), (-1, "patch"), (-1, "cls")]
    covered = [i for c in consumers for i in range(4 * DIM)[c.in_slice]]
    assert covered == list(range(4 * DIM)) and all(c.conv is consumers[0].conv for c in consumers)
    dpt = build_head(HeadConfig(kind="dpt", out_channels=1, layers=(0, 1, 2, 3), batch_norm=True), DIM)
    assert [c.layer for c in dpt.consumers()] == [0, 1, 2, 3]
    assert all(c.norm is not None and c.in_slice == slice(0, DIM) for c in dpt.consumers())


def _transform(
    feats: list[tuple[Tensor, Tensor]], maps: list[tuple[Tensor, Tensor]]
) -> list[tuple[Tensor, Tensor]]:
    """Apply f -> A f + c over channels to each layer's patch map and CLS token."""
    out = []
    for (patch, cls), (A, c) in zip(feats, maps, strict=True):
        out.append((torch.einsum("ij,bjhw->bihw", A, patch) + c[:, None, None], cls @ A.T + c))
    return out


@pytest.mark.parametrize(
    ("kind", "batch_norm", "use_cls", "layers"),
    [
        ("linear", False, False, (-1,)),
        ("linear", True, False, (-1,)),
        ("linear", False, True, (-1,)),
        ("linear", True, True, (-2, -1)),
        ("dpt", False, False, (0, 1, 2, 3)),
        ("dpt", True, True, (0, 1, 2, 3)),
    ],
)
def test_fold_linear_map_matches_transformed_features(
    kind: str, batch_norm: bool, use_cls: bool, layers: tuple[int, ...]
) -> None:
    torch.manual_seed(0)
    cfg = HeadConfig(kind=kind, out_channels=3, layers=layers, use_cls=use_cls, batch_norm=batch_norm,
                     dpt_features=8)  # fmt: skip
    head = build_head(cfg, DIM).eval()
    _randomize_batch_norms(head)
    g = torch.Generator().manual_seed(1)
    maps = {
        layer: (
            torch.eye(DIM) + 0.3 * torch.randn(DIM, DIM, generator=g),
            0.5 * torch.randn(DIM, generator=g),
        )
        for layer in layers
    }
    feats = _feats(len(layers), h=3, w=4)
    with torch.no_grad():
        expected = head(_transform(feats, [maps[layer] for layer in layers]), (28, 42))
        for consumer in head.consumers():
            fold_linear_map(consumer, *maps[consumer.layer])
        folded = head(feats, (28, 42))
    assert (folded - expected).abs().max().item() <= 1e-5


def test_fold_rejects_wrong_map_shape() -> None:
    head = build_head(HeadConfig(kind="linear", out_channels=2), DIM)
    consumer = head.consumers()[0]
    with pytest.raises(ShapeError, match=f"\\({DIM}, {DIM}\\)"):
        fold_linear_map(consumer, torch.eye(DIM + 1), torch.zeros(DIM + 1))

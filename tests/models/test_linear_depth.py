"""The linear_depth head: options, every bins/regression rule against its formula, size and fold."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from simokit.errors import ConfigError
from simokit.models import HeadConfig, build_head, fold_linear_map
from simokit.models.heads import LinearDepthHead

DIM = 8


def _feats(layers: int, seed: int = 0) -> list[tuple[Tensor, Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(2, DIM, 3, 5, generator=g), torch.randn(2, DIM, generator=g)) for _ in range(layers)]


def _expected(head: LinearDepthHead, feats: list[tuple[Tensor, Tensor]], size: tuple[int, int]) -> Tensor:
    """Source order: upsample the concatenated features 4x, conv, then the depth rule, then resize."""
    x = torch.cat([torch.cat((p, c[:, :, None, None].expand_as(p)), 1) for p, c in feats], 1)
    x = F.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False)
    s = F.conv2d(x, head.conv.weight, head.conv.bias)
    opt = head.options
    if opt["bins"]:
        if opt["norm_strategy"] == "softmax":
            p = torch.softmax(s, 1)
        else:
            p = torch.relu(s) + 0.1 if opt["norm_strategy"] == "linear" else torch.sigmoid(s)
            p = p / p.sum(1, keepdim=True)
        space = torch.logspace if opt["bins_strategy"] == "SID" else torch.linspace
        depth = (p * space(opt["min_depth"], opt["max_depth"], opt["bins"])[None, :, None, None]).sum(
            1, keepdim=True
        )
    else:
        depth = torch.sigmoid(s) * opt["max_depth"] if opt["scale_up"] else torch.relu(s) + opt["min_depth"]
    if opt["clamp"]:
        depth = depth.clamp(opt["min_depth"], opt["max_depth"])
    return F.interpolate(depth, size=size, mode="bilinear", align_corners=False)


@pytest.mark.parametrize(
    "options",
    [
        {"bins": 16, "norm_strategy": "linear", "clamp": True},
        {"bins": 16, "norm_strategy": "softmax", "min_depth": 0.5, "max_depth": 20.0},
        {"bins": 16, "norm_strategy": "sigmoid", "bins_strategy": "SID", "min_depth": 0.0, "max_depth": 1.5},
        {"bins": 0, "scale_up": False, "min_depth": 0.25},
        {"bins": 0, "scale_up": True, "max_depth": 80.0},
    ],
)
def test_every_depth_rule_equals_its_formula(options: dict) -> None:
    cfg = HeadConfig("linear_depth", 1, layers=(0, 1), use_cls=True, norm=False, options=options)
    assert HeadConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    torch.manual_seed(0)
    head = build_head(cfg, DIM).eval()
    assert isinstance(head, LinearDepthHead) and head.native_size(42, 70) == (42, 70)
    assert set(head.state_dict()) == {"conv.weight", "conv.bias"}  # the bin centres are derived, not stored
    feats = _feats(2)
    with torch.no_grad():
        for size in ((12, 20), (17, 29)):
            got = head(feats, size)
            assert got.shape == (2, 1, *size)
            torch.testing.assert_close(got, _expected(head, feats, size), rtol=1e-5, atol=1e-6)


def test_fold_into_the_depth_conv_is_exact() -> None:
    cfg = HeadConfig("linear_depth", 1, layers=(3, 7), use_cls=True, options={"bins": 32})
    torch.manual_seed(1)
    head = build_head(cfg, DIM).double().eval()
    folded = copy.deepcopy(head)
    feats = [(p.double(), c.double()) for p, c in _feats(2, seed=2)]
    mapped = [list(pair) for pair in feats]
    g = torch.Generator().manual_seed(3)
    consumers = folded.consumers()
    assert [(c.layer, c.part) for c in consumers] == [(3, "patch"), (3, "cls"), (7, "patch"), (7, "cls")]
    for i, consumer in enumerate(consumers):
        A = torch.eye(DIM, dtype=torch.float64) + 0.2 * torch.randn(
            DIM, DIM, generator=g, dtype=torch.float64
        )
        c = 0.2 * torch.randn(DIM, generator=g, dtype=torch.float64)
        fold_linear_map(consumer, A, c)
        layer, part = divmod(i, 2)
        v = mapped[layer][part]
        mapped[layer][part] = (
            torch.einsum("ij,bjhw->bihw", A, v) + c[:, None, None] if part == 0 else v @ A.T + c
        )
    with torch.no_grad():
        torch.testing.assert_close(
            folded(feats, (9, 11)), head([(p, c) for p, c in mapped], (9, 11)), rtol=1e-5, atol=1e-7
        )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"out_channels": 2}, "1 channel"),
        ({"activation": "exp"}, "activation 'none'"),
        ({"batch_norm": True}, "no BatchNorm"),
        ({"options": {"bins": 1}}, "'bins' is 1"),
        ({"options": {"max_depth": 0.0001}}, "min_depth < max_depth"),
        ({"options": {"norm_strategy": "l2"}}, "norm_strategy"),
        ({"options": {"upsample": 0}}, "upsample"),
        ({"options": {"clamp": "yes"}}, "true or false"),
        ({"options": {"n_bins": 256}}, "unknown linear_depth option"),
    ],
)
def test_bad_depth_options_are_refused(fields: dict, message: str) -> None:
    cfg = HeadConfig(**{"kind": "linear_depth", "out_channels": 1, **fields})
    with pytest.raises(ConfigError, match=message):
        build_head(cfg, DIM)

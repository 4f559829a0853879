"""The method registry and hyper-parameter validation."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from simokit.errors import ConfigError
from simokit.merge import (
    MergeMethod,
    MergeParams,
    MergeSetup,
    available_methods,
    build_method,
    get_method,
    registry,
)
from simokit.merge.learned.base import LearnedMerge

BUILTINS = {
    "sum",
    "average",
    "zeroshot",
    "ties",
    "tall_mask",
    "consensus",
    "dare",
    "breadcrumbs",
    "star",
    "tsv",
    "lines",
    "normavg",
}
LEARNED = {"adamerging_tap"}  # their grid points merge once learning filled in the coefficients
SETUP = MergeSetup(num_experts=3, depth=2)


def test_all_builtin_methods_are_registered() -> None:
    assert set(available_methods()) == BUILTINS | LEARNED


def test_unknown_method_suggests_the_closest_and_lists_all() -> None:
    with pytest.raises(
        ConfigError,
        match=r"'tie' \(did you mean 'ties'\?\); valid methods: adamerging_tap, average, .*zeroshot",
    ):
        get_method("tie")
    with pytest.raises(ConfigError, match="valid methods"):
        get_method("qqqqqq")


@dataclass(frozen=True)
class _NoParams(MergeParams):
    """None."""


class _Identity(MergeMethod[_NoParams]):
    name = "sum"
    params_type = _NoParams

    def merge_tensor(self, key: str, taus: list[torch.Tensor]) -> torch.Tensor:
        return torch.zeros_like(taus[0])


def test_duplicate_names_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    available_methods()
    monkeypatch.setattr(registry, "_METHODS", dict(registry._METHODS))
    with pytest.raises(ConfigError, match="'sum' is already registered"):
        registry.register(_Identity)
    renamed = type("_Renamed", (_Identity,), {"name": "identity_for_test"})
    assert registry.register(renamed) is renamed
    assert get_method("identity_for_test") is renamed
    with pytest.raises(ConfigError, match="already registered"):
        registry.register(renamed)


def test_unknown_hyper_parameters_list_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="'ties' has no hyper-parameter alpah; valid: k, alpha, scope"):
        build_method("ties", SETUP, alpah=1.0)
    with pytest.raises(ConfigError, match="valid: none"):
        build_method("average", SETUP, alpha=1.0)


@pytest.mark.parametrize(
    ("method", "hparams", "message"),
    [
        ("ties", {"k": 0.0}, r"k=0.0 must be a number in \(0.0, 1.0\]"),
        ("ties", {"scope": "layer"}, "scope='layer' must be one of global, tensor"),
        ("sum", {"alpha": "big"}, "alpha='big'"),
        ("dare", {"p": 1.0}, r"p=1.0 must be a number in \[0.0, 1.0\)"),
        ("dare", {"seed": 1.5}, "seed=1.5 must be an integer"),
        ("breadcrumbs", {"beta": 0.2, "gamma": 0.8}, "keep beta \\+ gamma < 1"),
        ("tall_mask", {"task": 3}, "task=3 but only 3 experts; use 0..2"),
        ("consensus", {"k": -1}, "k=-1 must be an integer >= 0"),
        ("star", {"eta": 0.0}, "eta=0.0"),
    ],
)
def test_invalid_hyper_parameters_raise_config_error(
    method: str, hparams: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        build_method(method, SETUP, **hparams)


@pytest.mark.parametrize("method", sorted(BUILTINS))
def test_every_grid_point_is_valid_and_defaults_build(method: str) -> None:
    cls = get_method(method)
    grid = cls.grid()
    assert grid and all(set(point) <= set(cls.hparam_names()) for point in grid)
    for point in grid:
        build_method(method, SETUP, **point)
    build_method(method, SETUP)


@pytest.mark.parametrize("method", sorted(LEARNED))
def test_learned_grid_points_build_once_coefficients_are_given(method: str) -> None:
    cls = get_method(method)
    assert issubclass(cls, LearnedMerge)
    layers = SETUP.depth + 2  # embeddings, blocks, final norm
    for point in cls.grid():
        with pytest.raises(ConfigError, match="no learned coefficients"):
            build_method(method, SETUP, **point)
        build_method(method, SETUP, **point, coefficients=[[0.3] * layers] * SETUP.num_experts)

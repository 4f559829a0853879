"""The re-aligner registry: one entry point per `RealignMode`, refusals that list the valid names."""

from __future__ import annotations

import copy

import pytest
import torch
import yaml

from simokit.config import apply_overrides, from_dict, to_dict
from simokit.data import generate
from simokit.errors import ConfigError
from simokit.merge.features import collect, head_parts, image_batches
from simokit.models import HeadConfig, build_encoder, build_head
from simokit.realign import registry
from simokit.realign.base import ExpertTargets, RealignSettings
from simokit.realign.least_squares import fit_realignment
from simokit.realign.registry import available_realigners, get_realigner
from simokit.recipe import MergeConfig, PipelineConfig, RealignMode, SelectBy


def test_every_mode_has_exactly_one_realigner() -> None:
    assert available_realigners() == ("head", "joint", "finetune", "lora") == RealignMode.names()


def test_unknown_mode_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="'shared'; valid: head, joint, finetune, lora"):
        get_realigner("shared")


def test_duplicate_registration_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    available_realigners()
    monkeypatch.setattr(registry, "_REALIGNERS", dict(registry._REALIGNERS))
    with pytest.raises(ConfigError, match=r"'head' is already registered by simokit\.realign\.least_squares"):
        registry.register(RealignMode.HEAD)(get_realigner("joint"))


def test_registered_least_squares_equals_the_direct_fit() -> None:
    """The registry's entry point passes the settings through; precomputed expert features too."""
    torch.manual_seed(0)
    merged = build_encoder("vitnano14").eval()
    expert = copy.deepcopy(merged)
    with torch.no_grad():
        for p in expert.parameters():
            p.add_(0.05 * torch.randn_like(p))
    data = generate(12, size=56, workers=1, progress=False, tasks=("depth",))
    heads = {"depth": build_head(HeadConfig("linear", 1, "softplus", layers=(0, 1)), 48).eval()}
    settings = RealignSettings(n_images=8, ridge=1e-2, batch=4)
    direct = fit_realignment(
        merged, {"depth": expert}, heads, data, mode="joint", n_images=8, ridge=1e-2, batch=4
    )
    via = get_realigner("joint")(merged, heads, data, settings, ExpertTargets(encoders={"depth": expert}))
    assert via.stats == direct.stats and via.images == direct.images == 8
    blocks = sorted({b for b, _ in head_parts(heads["depth"], merged.depth)})
    feats = {"depth": collect(expert, list(image_batches(data, 8, 4)), blocks)}
    cached = get_realigner("joint")(merged, heads, data, settings, ExpertTargets(features=feats))
    assert cached.stats == direct.stats


def test_choices_round_trip_through_yaml_and_overrides() -> None:
    """Config values stay plain strings (YAML dumps them) and parse to their enum members."""
    data = apply_overrides({}, ["merge.realign=[lora, head]", "merge.select=eval"])
    cfg = from_dict(PipelineConfig, data)
    assert cfg.merge.realign == (RealignMode.LORA, RealignMode.HEAD)
    assert SelectBy.parse(cfg.merge.select, "merge.select") is SelectBy.EVAL
    text = yaml.safe_dump(to_dict(cfg))
    assert from_dict(PipelineConfig, yaml.safe_load(text)) == cfg
    assert f"{RealignMode.JOINT} re-align" == "joint re-align" and {RealignMode.JOINT: 1}["joint"] == 1
    with pytest.raises(ConfigError, match=r"merge\.select='best' must be one of eval, tap, tap_aligned"):
        MergeConfig(select="best")
    with pytest.raises(ConfigError, match="give one or more of head, joint, finetune, lora"):
        from_dict(PipelineConfig, apply_overrides({}, ["merge.realign=[shared]"]))

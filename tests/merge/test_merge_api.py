"""merge_state_dicts refuses experts that do not match the base, naming the expert and key."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from simokit.errors import CheckpointError, ConfigError
from simokit.merge import merge_state_dicts

Family = Callable[[int], tuple[dict[str, torch.Tensor], list[dict[str, torch.Tensor]]]]


def test_missing_and_extra_keys_name_the_expert(vit_family: Family) -> None:
    base, experts = vit_family(2)
    del experts[1]["blocks.1.mlp.fc2.bias"]
    with pytest.raises(CheckpointError, match=r"expert 1: lacks \['blocks.1.mlp.fc2.bias'\]"):
        merge_state_dicts(base, experts, "sum")
    base, experts = vit_family(2)
    experts[0]["head.weight"] = torch.zeros(2)
    with pytest.raises(CheckpointError, match=r"expert 0: has unexpected \['head.weight'\]"):
        merge_state_dicts(base, experts, "sum")


def test_shape_and_dtype_mismatch_name_the_expert_and_key(vit_family: Family) -> None:
    base, experts = vit_family(3)
    experts[2]["blocks.0.attn.qkv.weight"] = torch.zeros(4, 4)
    with pytest.raises(CheckpointError, match=r"expert 2: 'blocks.0.attn.qkv.weight' is \(4, 4\) float32"):
        merge_state_dicts(base, experts, "sum")
    base, experts = vit_family(2)
    experts[1]["norm.weight"] = experts[1]["norm.weight"].half()
    with pytest.raises(
        CheckpointError, match=r"expert 1: 'norm.weight' is .* float16 but the base has .* float32"
    ):
        merge_state_dicts(base, experts, "ties")


def test_no_experts_and_bad_hyper_parameters_are_config_errors(vit_family: Family) -> None:
    base, experts = vit_family(2)
    with pytest.raises(ConfigError, match="at least one expert"):
        merge_state_dicts(base, [], "sum")
    with pytest.raises(ConfigError, match="valid: alpha"):
        merge_state_dicts(base, experts, "sum", scale=0.3)


def test_merge_keeps_keys_shapes_dtypes_and_does_not_touch_inputs(vit_family: Family) -> None:
    base, experts = vit_family(3)
    snapshot = {k: v.clone() for k, v in base.items()}
    merged = merge_state_dicts(base, experts, "ties")
    assert list(merged) == list(base)
    assert all(merged[k].shape == base[k].shape and merged[k].dtype == base[k].dtype for k in base)
    assert all(torch.equal(base[k], snapshot[k]) for k in base)

"""In-memory merging of encoder state dicts, and the pass driver the streaming merge shares."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from simokit.errors import CheckpointError, ConfigError
from simokit.merge.methods.base import MergeMethod, MergeSetup
from simokit.merge.registry import build_method
from simokit.merge.task_vectors import infer_depth, task_vectors

# (dtype name, shape) of one tensor: all a compatibility check needs, readable from file headers.
TensorSpec = tuple[str, tuple[int, ...]]
Loader = Callable[[str], tuple[Tensor, list[Tensor]]]
Emitter = Callable[[str, Tensor], None]


def prepare(num_experts: int, keys: Sequence[str], method: str, hparams: dict[str, Any]) -> MergeMethod[Any]:
    """Build `method` for T experts over an encoder with these keys (validates hyper-parameters)."""
    if num_experts < 1:
        raise ConfigError("merging needs at least one expert; pass one or more expert state dicts or files")
    return build_method(method, MergeSetup(num_experts=num_experts, depth=infer_depth(keys)), **hparams)


def compare_specs(
    ref: Mapping[str, TensorSpec], other: Mapping[str, TensorSpec], who: str, ref_name: str
) -> None:
    """Raise CheckpointError naming `who` and the first key whose presence, dtype or shape differs."""
    missing = [k for k in ref if k not in other]
    extra = [k for k in other if k not in ref]
    if missing or extra:
        what = f"lacks {missing[:3]}" if missing else f"has unexpected {extra[:3]}"
        raise CheckpointError(f"{who}: {what} compared with {ref_name}; experts must share the base's keys")
    for key, (dtype, shape) in ref.items():
        if other[key] != (dtype, shape):
            got_dtype, got_shape = other[key]
            raise CheckpointError(
                f"{who}: '{key}' is {got_shape} {got_dtype} but {ref_name} has {shape} {dtype}; "
                "experts must be fine-tuned from this base"
            )


def run_stat_passes(
    merger: MergeMethod[Any], keys: Sequence[str], float_keys: set[str], load: Loader
) -> None:
    """Feed every float tensor's task vectors to the method's statistics passes."""
    for pass_index in range(merger.stat_passes):
        for key in keys:
            if key in float_keys:
                base, experts = load(key)
                merger.observe(pass_index, key, task_vectors(base, experts))
        merger.end_pass(pass_index)


def run_merge(
    merger: MergeMethod[Any], keys: Sequence[str], float_keys: set[str], load: Loader, emit: Emitter
) -> None:
    """Run the statistics passes, then emit θ for every key in order (non-float tensors: the base's)."""
    run_stat_passes(merger, keys, float_keys, load)
    for key in keys:
        base, experts = load(key)
        if key not in float_keys:
            emit(key, base)
            continue
        delta = merger.merge_tensor(key, task_vectors(base, experts))
        emit(key, (base.to(delta.dtype) + delta).to(base.dtype))


def _spec(t: Tensor) -> TensorSpec:
    return str(t.dtype).removeprefix("torch."), tuple(t.shape)


def check_experts(base: Mapping[str, Tensor], experts: Sequence[Mapping[str, Tensor]]) -> None:
    """Raise CheckpointError naming the expert index and key unless every expert matches `base`."""
    ref = {k: _spec(v) for k, v in base.items()}
    for index, expert in enumerate(experts):
        compare_specs(ref, {k: _spec(v) for k, v in expert.items()}, f"expert {index}", "the base")


def merge_state_dicts(
    base: dict[str, Tensor], experts: list[dict[str, Tensor]], method: str, /, **hparams: Any
) -> dict[str, Tensor]:
    """Merge expert encoders fine-tuned from `base` (same keys, shapes, dtypes) into one such state dict.

    The first three are positional-only, so a hyper-parameter may be called `base` (adamerging_tap)."""
    # Deterministic: the only randomness (DARE) is seeded per tensor from its `seed` hyper-parameter.
    merger = prepare(len(experts), list(base), method, hparams)
    check_experts(base, experts)
    merged: dict[str, Tensor] = {}

    def emit(key: str, tensor: Tensor) -> None:
        merged[key] = tensor.clone() if tensor is base[key] else tensor

    float_keys = {k for k, v in base.items() if v.is_floating_point()}
    with torch.no_grad():
        run_merge(merger, list(base), float_keys, lambda k: (base[k], [e[k] for e in experts]), emit)
    return merged

"""Task-vector helpers: layer indices, the exact streaming top-k threshold, seeds and masks."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from simokit.errors import CheckpointError
from simokit.merge.task_vectors import (
    block_index,
    disjoint_mean,
    elect_sign,
    infer_depth,
    keep_count,
    kth_largest_magnitude,
    magnitude_band,
    stable_seed,
    task_vectors,
)
from simokit.merge.topk import MagnitudeThreshold


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("cls_token", 0),
        ("pos_embed", 0),
        ("mask_token", 0),
        ("register_tokens", 0),
        ("patch_embed.proj.weight", 0),
        ("blocks.0.attn.qkv.weight", 1),
        ("blocks.11.mlp.fc2.bias", 12),
        ("blocks.1.5.ls1.gamma", 6),  # chunked checkpoints: blocks.<chunk>.<global index>
        ("norm.weight", 13),
    ],
)
def test_block_index(key: str, expected: int) -> None:
    assert block_index(key, depth=12) == expected


def test_block_index_rejects_foreign_keys_and_depth_is_inferred() -> None:
    with pytest.raises(CheckpointError, match=r"head\.weight"):
        block_index("head.weight", 12)
    assert infer_depth(["cls_token", "blocks.0.ls1.gamma", "blocks.3.ls2.gamma", "norm.bias"]) == 4
    assert infer_depth(["cls_token"]) == 0


def test_task_vectors_are_float_differences() -> None:
    base = torch.tensor([1.0, 2.0], dtype=torch.bfloat16)
    (tau,) = task_vectors(base, [torch.tensor([1.5, 1.0], dtype=torch.bfloat16)])
    assert tau.dtype == torch.float32
    assert torch.equal(tau, torch.tensor([0.5, -1.0]))


def test_keep_count_is_robust_to_float_error() -> None:
    assert keep_count(100, 0.29) == 29
    assert keep_count(10, 0.25) == 2


def _streamed_threshold(tensors: list[torch.Tensor], fraction: float) -> float:
    selector = MagnitudeThreshold(fraction)
    for pass_index in range(MagnitudeThreshold.passes):
        for t in tensors:
            selector.observe(pass_index, t)
        selector.end_pass(pass_index)
    assert selector.threshold is not None
    return selector.threshold


@pytest.mark.parametrize("fraction", [0.001, 0.2, 0.5, 0.9, 1.0])
def test_streamed_threshold_equals_kthvalue_of_concatenation(fraction: float) -> None:
    g = torch.Generator().manual_seed(3)
    tensors = [torch.randn(40, 30, generator=g) * 10 ** (i - 2) for i in range(4)]
    tensors.append(torch.zeros(50))  # exact zeros and repeated values
    tensors.append(torch.full((20,), 0.125))
    flat = torch.cat([t.reshape(-1) for t in tensors]).abs()
    n_keep = keep_count(flat.numel(), fraction)
    expected = float(torch.kthvalue(flat, flat.numel() - n_keep + 1).values)
    assert _streamed_threshold(tensors, fraction) == expected
    assert kth_largest_magnitude(torch.cat([t.reshape(-1) for t in tensors]), n_keep) == expected


def test_streamed_threshold_keeps_nothing_below_one_entry() -> None:
    assert _streamed_threshold([torch.ones(3)], 0.2) == float("inf")


def test_sign_election_and_disjoint_mean() -> None:
    trimmed = torch.tensor([[0.5, 0.0, -0.2], [-0.3, 0.0, 0.2], [0.4, 0.0, 0.0]])
    sign = elect_sign(trimmed)
    assert torch.equal(sign, torch.tensor([1.0, 0.0, 0.0]))
    assert torch.allclose(disjoint_mean(trimmed, sign), torch.tensor([0.45, 0.0, 0.0]))


def test_stable_seed_is_fixed_across_processes() -> None:
    # Python's hash() is salted per process; the sha256-derived seed must not be.
    code = "from simokit.merge.task_vectors import stable_seed; print(stable_seed(3, 'k', 1))"
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert int(out.stdout) == stable_seed(3, "k", 1)
    assert len({stable_seed(s, k, i) for s in (0, 1) for k in ("a", "b") for i in (0, 1)}) == 8


def test_magnitude_band_drops_exact_counts() -> None:
    t = torch.tensor([0.1, -0.9, 0.3, 0.5, -0.2, 0.7, 0.05, 0.6, -0.4, 0.8])
    keep = magnitude_band(t, drop_top=0.1, drop_bottom=0.5)
    assert torch.equal(keep, torch.tensor([False, False, False, True, False, True, False, True, False, True]))

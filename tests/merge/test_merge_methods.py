"""Each merge method against its paper's formula on small hand-made tensors."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from simokit.errors import CheckpointError
from simokit.merge import merge_state_dicts, tall_masks

T = torch.tensor
StateDict = dict[str, torch.Tensor]
Family = Callable[[int], tuple[StateDict, list[StateDict]]]


def _experts(base: dict[str, torch.Tensor], *taus: dict[str, list[float]]) -> list[dict[str, torch.Tensor]]:
    return [{k: base[k] + T(v) for k, v in tau.items()} for tau in taus]


def _delta(merged: dict[str, torch.Tensor], base: dict[str, torch.Tensor], key: str) -> torch.Tensor:
    return merged[key] - base[key]


KEY = "blocks.0.ls1.gamma"
BASE = {KEY: T([1.0, 2.0, 3.0])}
TAU1, TAU2 = {KEY: [0.1, 0.2, 0.3]}, {KEY: [-0.4, 0.0, 1.0]}


def test_sum_is_task_arithmetic() -> None:
    merged = merge_state_dicts(BASE, _experts(BASE, TAU1, TAU2), "sum")
    assert torch.allclose(_delta(merged, BASE, KEY), 0.3 * T([-0.3, 0.2, 1.3]))
    merged = merge_state_dicts(BASE, _experts(BASE, TAU1, TAU2), "sum", alpha=1.0)
    assert torch.allclose(_delta(merged, BASE, KEY), T([-0.3, 0.2, 1.3]))


def test_average_is_the_mean_expert() -> None:
    merged = merge_state_dicts(BASE, _experts(BASE, TAU1, TAU2), "average")
    assert torch.allclose(_delta(merged, BASE, KEY), T([-0.15, 0.1, 0.65]))


def test_zeroshot_is_the_base_and_integer_buffers_come_from_the_base() -> None:
    base = {**BASE, "num_batches_tracked": T(7)}
    experts = [{**e, "num_batches_tracked": T(99)} for e in _experts(BASE, TAU1, TAU2)]
    for method in ("zeroshot", "sum"):
        merged = merge_state_dicts(base, experts, method)
        assert merged["num_batches_tracked"].item() == 7
        assert merged["num_batches_tracked"] is not base["num_batches_tracked"]
    assert torch.equal(merge_state_dicts(base, experts, "zeroshot")[KEY], BASE[KEY])


# TIES worked by hand: 3 experts × 6 values, split over two tensors of 4 and 2 values.
A, B = "blocks.0.ls1.gamma", "blocks.0.ls2.gamma"
TIES_BASE = {A: torch.ones(4), B: torch.ones(2)}
TIES_TAUS = (
    {A: [0.5, -0.1, 0.3, -0.8], B: [0.05, 0.2]},
    {A: [-0.4, 0.6, 0.1, -0.2], B: [0.7, -0.05]},
    {A: [0.3, -0.2, -0.9, 0.15], B: [0.25, 0.4]},
)


def test_ties_global_trim_elect_disjoint_mean_by_hand() -> None:
    # k=0.5 keeps 3 of 6 per expert over the WHOLE vector:
    #   τ̂1 = [.5 0 .3 -.8 | 0 0], τ̂2 = [-.4 .6 0 0 | .7 0], τ̂3 = [.3 0 -.9 0 | 0 .4]
    # signs of Σ: [+ + - - | + +]; disjoint means: [(.5+.3)/2, .6, -.9, -.8 | .7, .4]
    merged = merge_state_dicts(TIES_BASE, _experts(TIES_BASE, *TIES_TAUS), "ties", k=0.5)
    assert torch.allclose(_delta(merged, TIES_BASE, A), T([0.4, 0.6, -0.9, -0.8]))
    assert torch.allclose(_delta(merged, TIES_BASE, B), T([0.7, 0.4]))
    halved = merge_state_dicts(TIES_BASE, _experts(TIES_BASE, *TIES_TAUS), "ties", k=0.5, alpha=0.5)
    assert torch.allclose(_delta(halved, TIES_BASE, B), T([0.35, 0.2]))


def test_ties_tensor_scope_trims_each_tensor() -> None:
    # Per tensor: B keeps 1 of 2 per expert, so τ̂1 keeps .2 there and B[1] = mean(.2, .4) = .3.
    merged = merge_state_dicts(TIES_BASE, _experts(TIES_BASE, *TIES_TAUS), "ties", k=0.5, scope="tensor")
    assert torch.allclose(_delta(merged, TIES_BASE, A), T([0.4, 0.6, -0.9, -0.8]))
    assert torch.allclose(_delta(merged, TIES_BASE, B), T([0.7, 0.3]))


def test_ties_zero_elected_sign_gives_zero() -> None:
    base = {KEY: torch.zeros(2)}
    merged = merge_state_dicts(base, _experts(base, {KEY: [0.5, 1.0]}, {KEY: [-0.5, 1.0]}), "ties", k=1.0)
    assert torch.allclose(merged[KEY], T([0.0, 1.0]))


# TALL by hand, λ = 0.4: τ_MTL = [1.1, 1.0, 0.1]
#   m1: [1, 0, .2] > .4·[.1, 1, .1]   -> [T F T]
#   m2: [0, 1, .2] > .4·[1.1, 0, .1]  -> [F T T]
#   m3: [.1, 0, .3] > .4·[1, 1, .4]   -> [F F T]
TALL_BASE = {KEY: T([0.0, 0.0, 0.0])}
TALL_TAUS = ({KEY: [1.0, 0.0, 0.2]}, {KEY: [0.0, 1.0, 0.2]}, {KEY: [0.1, 0.0, -0.3]})


def test_tall_masks_by_hand() -> None:
    masks = tall_masks(TALL_BASE, _experts(TALL_BASE, *TALL_TAUS), lam=0.4)
    assert [m[KEY].tolist() for m in masks] == [
        [True, False, True],
        [False, True, True],
        [False, False, True],
    ]


def test_tall_mask_builds_the_task_specific_encoder() -> None:
    experts = _experts(TALL_BASE, *TALL_TAUS)
    assert torch.allclose(merge_state_dicts(TALL_BASE, experts, "tall_mask", task=0)[KEY], T([1.1, 0.0, 0.1]))
    assert torch.allclose(merge_state_dicts(TALL_BASE, experts, "tall_mask", task=1)[KEY], T([0.0, 1.0, 0.1]))
    scaled = merge_state_dicts(TALL_BASE, experts, "tall_mask", task=2, alpha=0.5)
    assert torch.allclose(scaled[KEY], T([0.0, 0.0, 0.05]))


def test_consensus_keeps_weights_used_by_k_tasks() -> None:
    experts = _experts(TALL_BASE, *TALL_TAUS)  # votes per weight: [1, 1, 3]
    assert torch.allclose(
        merge_state_dicts(TALL_BASE, experts, "consensus", alpha=1.0)[KEY], T([0.0, 0.0, 0.1])
    )
    k1 = merge_state_dicts(TALL_BASE, experts, "consensus", k=1, alpha=0.5)
    assert torch.allclose(k1[KEY], 0.5 * T([1.1, 1.0, 0.1]))


def test_breadcrumbs_drops_outliers_and_small_entries_per_tensor() -> None:
    base = {KEY: torch.zeros(10)}
    tau1 = [0.1, -0.9, 0.3, 0.5, -0.2, 0.7, 0.05, 0.6, -0.4, 0.8]  # keeps .5 .7 .6 .8
    tau2 = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0]  # keeps .8 .7 .6 .5
    merged = merge_state_dicts(
        base, _experts(base, {KEY: tau1}, {KEY: tau2}), "breadcrumbs", beta=0.1, gamma=0.5
    )
    expected = 0.3 * T([0.0, 0.8, 0.7, 1.1, 0.5, 0.7, 0.0, 0.6, 0.0, 0.8])
    assert torch.allclose(merged[KEY], expected)


def _authors_lines_scale(key: str, alpha: float, beta: float, num_blocks: int) -> float:
    """The authors' rule (wang-kee/LiNeS `LiNeS_scaling`): the first '.i.' a key holds picks its
    block; block i is scaled by alpha + beta * i / (L - 1), any other tensor by alpha."""
    for layer in range(num_blocks):
        if f".{layer}." in key:
            return alpha + beta * (layer / (num_blocks - 1 if num_blocks > 1 else 1))
    return alpha


@pytest.mark.parametrize("depth", [2, 12])
@pytest.mark.parametrize(("alpha", "beta"), [(None, 0.5), (0.2, 0.3)])
def test_lines_follows_the_authors_scaling(depth: int, alpha: float | None, beta: float) -> None:
    keys = ["cls_token", "pos_embed", "patch_embed.proj.weight", "norm.weight"]
    keys += [f"blocks.{i}.{p}" for i in range(depth) for p in ("ls1.gamma", "mlp.fc2.weight")]
    base = {k: torch.zeros(2) for k in keys}
    experts = _experts(base, {k: [1.0, 1.0] for k in keys}, {k: [1.0, -1.0] for k in keys})
    hp = {"beta": beta} | ({} if alpha is None else {"alpha": alpha})
    merged = merge_state_dicts(base, experts, "lines", **hp)
    a = 0.5 if alpha is None else alpha  # default alpha = 1/T with T = 2 experts
    for key in keys:
        assert torch.allclose(merged[key], _authors_lines_scale(key, a, beta, depth) * T([2.0, 0.0])), key
    # the ends of the ramp: block 0 at alpha, the last block at alpha + beta, the final norm at alpha
    assert torch.allclose(merged["blocks.0.ls1.gamma"], a * T([2.0, 0.0]))
    assert torch.allclose(merged[f"blocks.{depth - 1}.ls1.gamma"], (a + beta) * T([2.0, 0.0]))
    assert torch.allclose(merged["norm.weight"], a * T([2.0, 0.0]))


def test_normavg_rescales_to_the_mean_global_norm() -> None:
    base = {A: torch.zeros(2), B: torch.zeros(1)}
    # ‖τ1‖ = 5 over both tensors, ‖τ2‖ = 1, n̄ = 3: weights 3/5 and 3.
    experts = _experts(base, {A: [3.0, 0.0], B: [4.0]}, {A: [0.0, 1.0], B: [0.0]})
    merged = merge_state_dicts(base, experts, "normavg", alpha=1.0)
    assert torch.allclose(merged[A], T([1.8, 3.0]))
    assert torch.allclose(merged[B], T([2.4]))


def test_dare_rescales_survivors_and_is_seeded() -> None:
    base = {KEY: torch.zeros(1000)}
    experts = _experts(base, {KEY: [0.5] * 1000})
    merged = merge_state_dicts(base, experts, "dare", p=0.9, alpha=1.0, seed=1)[KEY]
    survivors = merged[merged != 0]
    assert torch.allclose(survivors, torch.full_like(survivors, 5.0))
    assert 50 <= survivors.numel() <= 150
    again = merge_state_dicts(base, experts, "dare", p=0.9, alpha=1.0, seed=1)[KEY]
    other = merge_state_dicts(base, experts, "dare", p=0.9, alpha=1.0, seed=2)[KEY]
    assert torch.equal(merged, again)
    assert not torch.equal(merged, other)


def test_dare_does_not_depend_on_processing_order(vit_family: Family) -> None:
    base, experts = vit_family(3)
    merged = merge_state_dicts(base, experts, "dare", seed=4)
    reversed_keys = list(reversed(base))
    rev = merge_state_dicts(
        {k: base[k] for k in reversed_keys},
        [{k: e[k] for k in reversed_keys} for e in experts],
        "dare",
        seed=4,
    )
    subset = ["blocks.1.mlp.fc1.weight", "norm.bias"]
    part = merge_state_dicts(
        {k: base[k] for k in subset}, [{k: e[k] for k in subset} for e in experts], "dare", seed=4
    )
    for key in base:
        assert torch.equal(merged[key], rev[key])
    for key in subset:
        assert torch.equal(merged[key], part[key])


def test_dare_is_unbiased_over_seeds() -> None:
    g = torch.Generator().manual_seed(0)
    tau = torch.randn(200, generator=g)
    base = {KEY: torch.zeros(200)}
    experts = [{KEY: tau.clone()}]
    runs = torch.stack(
        [merge_state_dicts(base, experts, "dare", p=0.5, alpha=1.0, seed=s)[KEY] for s in range(400)]
    )
    # Per entry the std of one draw is |τ| (p = 0.5), so the mean over 400 seeds is within ~5% of ‖τ‖.
    assert float((runs.mean(dim=0) - tau).norm() / tau.norm()) < 0.1


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_outputs_keep_the_base_dtype(dtype: torch.dtype) -> None:
    base = {KEY: BASE[KEY].to(dtype)}
    experts = [{KEY: e[KEY].to(dtype)} for e in _experts(BASE, TAU1, TAU2)]
    merged = merge_state_dicts(base, experts, "average")
    assert merged[KEY].dtype == dtype
    assert torch.allclose(merged[KEY].double(), T([0.85, 2.1, 3.65]).double(), atol=2e-2)


def test_ties_global_trim_matches_kthvalue_over_the_concatenated_task_vector(vit_family: Family) -> None:
    base, experts = vit_family(3)
    merged = merge_state_dicts(base, experts, "ties", k=0.2)
    keys = [k for k in base if base[k].is_floating_point()]
    taus = [[e[k] - base[k] for k in keys] for e in experts]
    thresholds = []
    for tau in taus:
        flat = torch.cat([t.reshape(-1) for t in tau]).abs()
        thresholds.append(torch.kthvalue(flat, flat.numel() - int(0.2 * flat.numel()) + 1).values)
    for i, key in enumerate(keys):
        trimmed = torch.stack(
            [tau[i] * (tau[i].abs() >= thr) for tau, thr in zip(taus, thresholds, strict=True)]
        )
        agree = trimmed * torch.sign(trimmed.sum(dim=0)) > 0
        expected = base[key] + (trimmed * agree).sum(dim=0) / agree.sum(dim=0).clamp(min=1)
        assert torch.allclose(merged[key], expected, atol=1e-6), key


def test_tall_masks_refuse_mismatched_experts() -> None:
    with pytest.raises(CheckpointError, match=r"expert 1: lacks \['blocks.0.ls1.gamma'\]"):
        tall_masks(TALL_BASE, [_experts(TALL_BASE, TALL_TAUS[0])[0], {}])

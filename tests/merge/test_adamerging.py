"""AdaMerging with TAP: the loss and its normalisation, the merge formula, learning lowers TAP, refusals."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from simokit.errors import ConfigError
from simokit.merge import get_method
from simokit.merge.api import merge_state_dicts
from simokit.merge.learned import tap
from simokit.merge.learned.coefficients import AdaMergingParams, merged_state, stack_task_vectors
from simokit.merge.learned.tap import EmaNormalizer, cosine_tap, learn_coefficients
from simokit.models import DinoVisionTransformer, build_encoder

StateDict = dict[str, torch.Tensor]


def test_cosine_tap_by_hand() -> None:
    a = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])  # (B=1, N=2, C=2)
    assert float(cosine_tap({3: a}, {3: a * 5})) == pytest.approx(0.0, abs=1e-7)  # scale-free
    assert float(cosine_tap({3: a}, {3: -a})) == pytest.approx(2.0)
    ortho = torch.tensor([[[0.0, 1.0], [0.0, 2.0]]])  # token 0 orthogonal (1), token 1 equal (0)
    assert float(cosine_tap({3: a}, {3: ortho})) == pytest.approx(0.5)
    # averaged over blocks: one block at distance 0.5, one at 2
    assert float(cosine_tap({1: a, 2: a}, {1: ortho, 2: -a})) == pytest.approx(1.25)


def test_ema_normaliser_balances_tasks_of_different_magnitude() -> None:
    norm = EmaNormalizer(decay=0.5)
    assert float(norm("depth", torch.tensor(100.0))) == pytest.approx(1.0)
    assert float(norm("seg", torch.tensor(0.01))) == pytest.approx(1.0)
    # EMA after the second value: 0.5 * 100 + 0.5 * 50 = 75
    assert float(norm("depth", torch.tensor(50.0))) == pytest.approx(50.0 / 75.0)
    assert norm.average == pytest.approx({"depth": 75.0, "seg": 0.01})
    # the gradient reaching each task is divided by its own scale
    x = torch.tensor(2.0, requires_grad=True)
    norm("seg", x * 0.01).backward()
    assert float(x.grad) == pytest.approx(0.01 / (0.5 * 0.01 + 0.5 * 0.02))


def test_the_ema_floor_stops_a_shrinking_task_from_taking_over() -> None:
    free, floored = EmaNormalizer(decay=0.5), EmaNormalizer(decay=0.5, floor=0.5)
    for value in (1.0, 0.1, 0.01, 0.001):  # a task converging onto its expert
        grads = []
        for norm in (free, floored):
            x = torch.tensor(value, requires_grad=True)
            norm("seg", x).backward()
            grads.append(float(x.grad))
    # EMA: 1 -> 0.55 -> 0.28 -> 0.1405; without the floor the weight keeps growing as 1/EMA, with it
    # it stops at 1 / (0.5 * first value)
    assert grads[0] == pytest.approx(1 / 0.1405) and grads[1] == pytest.approx(2.0)
    assert floored.average["seg"] == pytest.approx(free.average["seg"])


def test_uniform_coefficients_equal_task_arithmetic(
    vit_family: Callable[[int], tuple[StateDict, list[StateDict]]],
) -> None:
    base, experts = vit_family(3)
    stack = stack_task_vectors(base, experts, AdaMergingParams(base="sum"))
    assert stack.num_tasks == 3 and stack.num_layers == 2 + 2  # embeddings, 2 blocks, final norm
    coef = torch.full((3, stack.num_layers), 0.4)
    got = merged_state(base, stack, coef)
    want = merge_state_dicts(base, experts, "sum", alpha=0.4)
    for key in want:
        torch.testing.assert_close(got[key].to(want[key].dtype), want[key], rtol=0, atol=1e-6)
    assert torch.equal(got["num_batches_tracked"], base["num_batches_tracked"])


def test_per_layer_coefficients_touch_only_their_layer(
    vit_family: Callable[[int], tuple[StateDict, list[StateDict]]],
) -> None:
    base, experts = vit_family(2)
    stack = stack_task_vectors(base, experts, AdaMergingParams())
    coef = torch.zeros(2, stack.num_layers)
    coef[1, 2] = 1.0  # task 1, layer 2 = blocks.1
    got = merged_state(base, stack, coef)
    for key, value in got.items():
        expected = experts[1][key] if key.startswith("blocks.1.") else base[key]
        torch.testing.assert_close(value.to(base[key].dtype), expected, rtol=0, atol=1e-6)


def test_ties_task_vectors_are_trimmed_and_sign_agree(
    vit_family: Callable[[int], tuple[StateDict, list[StateDict]]],
) -> None:
    base, experts = vit_family(3)
    plain = stack_task_vectors(base, experts, AdaMergingParams(base="sum"))
    ties = stack_task_vectors(base, experts, AdaMergingParams(base="ties", k=0.3))
    kept = sum(int((v != 0).sum()) for v in ties.vectors.values())
    total = sum(v.numel() for v in plain.vectors.values())
    assert 0 < kept < 0.3 * total  # trimmed to the top 30% per expert, then sign disagreements dropped
    for key, parts in ties.vectors.items():
        nonzero = parts != 0
        torch.testing.assert_close(parts[nonzero], plain.vectors[key][nonzero])  # kept entries unchanged
        signs = torch.sign(parts).sum(dim=0).abs()
        assert torch.equal(signs, nonzero.sum(dim=0).to(signs.dtype))  # all kept entries share one sign


def _toy_merge() -> tuple[
    DinoVisionTransformer, StateDict, dict[str, StateDict], torch.Tensor, AdaMergingParams
]:
    """A nano encoder, two noisy 'experts' of it, 12 random images and a short learning schedule."""
    torch.manual_seed(0)
    enc = build_encoder("vitnano14")
    base = {k: v.clone() for k, v in enc.state_dict().items()}
    experts = {}
    for t, seed in (("a", 1), ("b", 2)):
        g = torch.Generator().manual_seed(seed)
        experts[t] = {
            k: v + 0.3 * v.std() * torch.randn(v.shape, generator=g)
            if v.is_floating_point() and v.numel() > 1
            else v
            for k, v in base.items()
        }
    images = torch.randn(12, 3, 56, 56, generator=torch.Generator().manual_seed(3))
    return enc, base, experts, images, AdaMergingParams(iters=15, batch=6, lr=4e-2, init=0.2)


def test_learning_lowers_tap_on_a_toy_merge() -> None:
    enc, base, experts, images, params = _toy_merge()
    result = learn_coefficients(enc, base, experts, {"a": [1], "b": [0, 1]}, images, params)
    assert result.tap_after["mean"] < 0.9 * result.tap_before["mean"]
    assert len(result.coefficients) == 2 and len(result.coefficients[0]) == 2 + 2
    assert all(0.0 <= c <= params.max_coef for row in result.coefficients for c in row)
    assert result.task_vector_mb > 0 and result.peak_rss_mb > 0
    # rebuilding from the stored coefficients reproduces the learned merge without optimising
    hp = {"iters": 15, "coefficients": result.coefficients}
    rebuilt = merge_state_dicts(base, list(experts.values()), "adamerging_tap", **hp)
    stack = stack_task_vectors(base, list(experts.values()), AdaMergingParams())
    direct = merged_state(base, stack, torch.tensor(result.coefficients))
    for key in rebuilt:
        torch.testing.assert_close(rebuilt[key], direct[key].to(rebuilt[key].dtype))


def test_bad_hyper_parameters_shapes_and_memory_are_refused(
    vit_family: Callable[[int], tuple[StateDict, list[StateDict]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, experts = vit_family(2)
    with pytest.raises(ConfigError, match="no hyper-parameter alpha"):
        get_method("adamerging_tap").params_from({"alpha": 0.3})
    with pytest.raises(ConfigError, match="base='dare'"):
        AdaMergingParams(base="dare")
    with pytest.raises(ConfigError, match="no learned coefficients"):
        merge_state_dicts(base, experts, "adamerging_tap")
    with pytest.raises(ConfigError, match=r"coefficients are \(1, 4\)"):
        merge_state_dicts(base, experts, "adamerging_tap", coefficients=[[0.1] * 4])
    monkeypatch.setattr(tap, "_available_bytes", lambda: 1024)
    enc = build_encoder("vitnano14")
    state = enc.state_dict()
    with pytest.raises(ConfigError, match="merge fewer tasks"):
        learn_coefficients(
            enc,
            state,
            {"a": state, "b": state},
            {"a": [1], "b": [1]},
            torch.zeros(2, 3, 56, 56),
            AdaMergingParams(),
        )


def test_a_cached_study_is_redone_when_adamerging_defaults_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The study cache key covers AdaMerging's defaults, not only the grid entries that name values."""
    import dataclasses
    from types import SimpleNamespace

    from simokit.pipeline import merging as workflow
    from simokit.recipe import MergeConfig

    files = []
    for name in ("base", "e1"):
        (tmp_path / name).write_bytes(name.encode())
        files.append(tmp_path / name)
    images = SimpleNamespace(image=np.zeros((2, 4, 4, 3), np.uint8))
    splits = SimpleNamespace(val=images, calib=images, test=images)

    def key() -> str:
        return workflow._study_key(MergeConfig(), files[0], files[1:], splits, 8)  # type: ignore[arg-type]

    before = key()
    assert key() == before

    @dataclasses.dataclass(frozen=True)
    class Unfloored(workflow.AdaMergingParams):
        ema_floor: float = 0.0

    monkeypatch.setattr(workflow, "AdaMergingParams", Unfloored)
    assert key() != before


def test_devices_resolve_or_are_refused_in_one_line() -> None:
    from simokit.device import resolve_device

    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="unknown; choose from auto, cpu, cuda"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no usable CUDA GPU"):
            resolve_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_learning_on_cuda_matches_cpu() -> None:
    """The toy merge learned on the GPU: the same coefficients to float tolerance; caller's module stays."""
    enc, base, experts, images, params = _toy_merge()
    blocks = {"a": [1], "b": [0, 1]}
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    cpu = learn_coefficients(enc, base, experts, blocks, images, params)
    gpu = learn_coefficients(enc, base, experts, blocks, images, params, device="cuda")
    np.testing.assert_allclose(np.array(gpu.coefficients), np.array(cpu.coefficients), rtol=0, atol=1e-3)
    assert gpu.tap_after["mean"] == pytest.approx(cpu.tap_after["mean"], abs=1e-3)
    assert gpu.peak_gpu_mb > 0 and next(enc.parameters()).device.type == "cpu"


def test_a_ties_based_merge_rebuilds_through_the_registry(
    vit_family: Callable[[int], tuple[StateDict, list[StateDict]]],
) -> None:
    """`base` is a hyper-parameter name too; the registered method merges like the learned formula."""
    base, experts = vit_family(3)
    params = AdaMergingParams(base="ties", k=0.3)
    stack = stack_task_vectors(base, experts, params)
    coef = torch.rand(3, stack.num_layers, generator=torch.Generator().manual_seed(0))
    rows = [[float(v) for v in row] for row in coef]
    got = merge_state_dicts(base, experts, "adamerging_tap", base="ties", k=0.3, coefficients=rows)
    want = merged_state(base, stack, torch.tensor(rows))
    for key in want:
        assert torch.equal(got[key], want[key].to(base[key].dtype)), key

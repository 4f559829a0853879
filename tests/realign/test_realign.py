"""Least-squares re-alignment: exact recovery, Gram-only residuals, folding equals mapping."""

from __future__ import annotations

import copy

import pytest
import torch

from simokit.data import generate, to_tensor_batch
from simokit.errors import ConfigError
from simokit.models import HeadConfig, build_encoder, build_head
from simokit.realign.least_squares import GramAccumulator, fit_realignment, head_parts


def test_gram_solve_recovers_affine_map_exactly() -> None:
    g = torch.Generator().manual_seed(0)
    a_true = torch.randn(6, 6, generator=g, dtype=torch.float64)
    c_true = torch.randn(6, generator=g, dtype=torch.float64)
    acc = GramAccumulator(6)
    for _ in range(4):  # several updates: accumulation must equal one big fit
        x = torch.randn(50, 6, generator=g, dtype=torch.float64)
        acc.update(x, x @ a_true.T + c_true)
    a, c = acc.solve(ridge=0.0)
    torch.testing.assert_close(a, a_true, rtol=0, atol=1e-9)
    torch.testing.assert_close(c, c_true, rtol=0, atol=1e-9)
    assert acc.residual(a, c) < 1e-18
    assert acc.n == 200


def test_residual_from_grams_matches_direct_computation() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 4, generator=g, dtype=torch.float64)
    y = torch.randn(40, 4, generator=g, dtype=torch.float64)
    acc = GramAccumulator(4)
    acc.update(x, y)
    a = torch.randn(4, 4, generator=g, dtype=torch.float64)
    c = torch.randn(4, generator=g, dtype=torch.float64)
    direct = float(((y - x @ a.T - c) ** 2).sum() / (y**2).sum())
    assert acc.residual(a, c) == pytest.approx(direct, rel=1e-10)


def test_ridge_shrinks_towards_identity_and_low_rank_truncates() -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(30, 5, generator=g, dtype=torch.float64)
    acc = GramAccumulator(5)
    acc.update(x, 3.0 * x)
    a_free, _ = acc.solve(ridge=0.0)
    a_heavy, _ = acc.solve(ridge=1e6)
    torch.testing.assert_close(a_free, 3.0 * torch.eye(5, dtype=torch.float64), rtol=0, atol=1e-9)
    torch.testing.assert_close(a_heavy, torch.eye(5, dtype=torch.float64), rtol=0, atol=1e-4)
    a_r1, _ = acc.solve(ridge=0.0, rank=1)
    assert torch.linalg.matrix_rank(a_r1 - torch.eye(5, dtype=torch.float64)) == 1


@pytest.fixture(scope="module")
def setup() -> dict[str, object]:
    torch.manual_seed(0)
    merged = build_encoder("vitnano14").eval()
    expert = copy.deepcopy(merged)
    with torch.no_grad():
        for p in expert.parameters():
            p.add_(0.05 * torch.randn_like(p))
    data = generate(24, size=56, workers=1, progress=False, tasks=("seg",))
    heads = {
        "seg": build_head(
            HeadConfig("linear", 5, "none", layers=(-1,), use_cls=True, batch_norm=True), 48
        ).eval(),
        "depth": build_head(HeadConfig("linear", 1, "softplus", layers=(0, 1), batch_norm=False), 48).eval(),
    }
    with torch.no_grad():  # non-trivial BatchNorm statistics
        bn = heads["seg"].bn  # type: ignore[union-attr]
        bn.running_mean.uniform_(-1, 1)  # type: ignore[union-attr,operator]
        bn.running_var.uniform_(0.5, 2)  # type: ignore[union-attr,operator]
    return {"merged": merged, "expert": expert, "data": data, "heads": heads}


def test_folded_heads_on_merged_features_track_experts(setup: dict) -> None:  # type: ignore[type-arg]
    merged, expert, data, heads = setup["merged"], setup["expert"], setup["data"], setup["heads"]
    experts = {"seg": expert, "depth": expert}
    result = fit_realignment(merged, experts, heads, data, n_images=24, ridge=1e-6)
    x = to_tensor_batch(data.image[:8])
    for task, head in heads.items():
        layers = head.cfg.layers
        f_exp = expert.get_intermediate_layers(x, n=layers, reshape=True, return_class_token=True)
        f_mrg = merged.get_intermediate_layers(x, n=layers, reshape=True, return_class_token=True)
        target = head(list(f_exp), (56, 56))
        plain = head(list(f_mrg), (56, 56))
        folded = result.heads[task](list(f_mrg), (56, 56))
        err_plain = (plain - target).abs().mean().item()
        err_folded = (folded - target).abs().mean().item()
        assert err_folded < 0.5 * err_plain, (task, err_plain, err_folded)
        stats = result.stats[task]
        assert stats["residual_after"] < stats["residual_before"]
    assert result.images == 24


def test_heads_reading_raw_blocks_are_fitted_on_raw_features(setup: dict) -> None:  # type: ignore[type-arg]
    merged, expert, data = setup["merged"], setup["expert"], setup["data"]
    head = build_head(HeadConfig("linear", 1, "none", layers=(0, 1), use_cls=True, norm=False), 48).eval()
    result = fit_realignment(merged, {"depth": expert}, {"depth": head}, data, n_images=24, ridge=1e-6)
    x = to_tensor_batch(data.image[:8])
    n = {"n": (0, 1), "reshape": True, "return_class_token": True, "norm": False}
    target = head(list(expert.get_intermediate_layers(x, **n)), (56, 56))
    err_plain = (head(list(merged.get_intermediate_layers(x, **n)), (56, 56)) - target).abs().mean()
    err_folded = (
        result.heads["depth"](list(merged.get_intermediate_layers(x, **n)), (56, 56)) - target
    ).abs()
    assert err_folded.mean() < 0.5 * err_plain
    assert head_parts(head, merged.depth)[0] == ((0, False), "cls")


def test_identical_encoders_give_identity_maps(setup: dict) -> None:  # type: ignore[type-arg]
    merged, data, heads = setup["merged"], setup["data"], setup["heads"]
    result = fit_realignment(merged, {"seg": merged, "depth": merged}, heads, data, n_images=16, ridge=1e-3)
    x = to_tensor_batch(data.image[:4])
    for task, head in heads.items():
        feats = list(
            merged.get_intermediate_layers(x, n=head.cfg.layers, reshape=True, return_class_token=True)
        )
        torch.testing.assert_close(
            result.heads[task](feats, (56, 56)), head(feats, (56, 56)), rtol=0, atol=1e-4
        )
        assert result.stats[task]["residual_after"] < 1e-9


def test_joint_mode_shares_one_map_and_bad_mode_is_refused(setup: dict) -> None:  # type: ignore[type-arg]
    merged, expert, data, heads = setup["merged"], setup["expert"], setup["data"], setup["heads"]
    one_head = {"depth": heads["depth"]}
    a = fit_realignment(merged, {"depth": expert}, one_head, data, mode="head", n_images=16)
    b = fit_realignment(merged, {"depth": expert}, one_head, data, mode="joint", n_images=16)
    assert a.stats == b.stats  # with a single task the stacked fit is the per-task fit
    assert head_parts(heads["seg"], merged.depth) == [((1, True), "cls"), ((1, True), "patch")]
    with pytest.raises(ConfigError, match="re-alignment mode"):
        fit_realignment(merged, {"depth": expert}, one_head, data, mode="shared")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_features_metrics_and_maps_on_cuda_match_cpu(setup: dict) -> None:  # type: ignore[type-arg]
    """merge.device=cuda: encoder passes on the GPU, results back on CPU, callers' modules unmoved."""
    from simokit.merge.features import collect, image_batches
    from simokit.models import MultiTaskModel
    from simokit.tasks.evaluate import evaluate

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    merged, expert, data, heads = setup["merged"], setup["expert"], setup["data"], setup["heads"]
    batches = list(image_batches(data, 24, 8))
    cpu, gpu = collect(merged, batches, [0, 1]), collect(merged, batches, [0, 1], device="cuda")
    for a, b in zip(cpu, gpu, strict=True):
        for block in (0, 1):
            assert b[block][0].device.type == "cpu"
            torch.testing.assert_close(b[block][0], a[block][0], rtol=0, atol=1e-4)
    model = MultiTaskModel(merged, {"seg": heads["seg"]})
    on_cpu = evaluate(model, data, ("seg",), 8, num_classes=11)
    on_gpu = evaluate(model, data, ("seg",), 8, num_classes=11, device="cuda")
    assert on_gpu["seg"]["miou"] == pytest.approx(on_cpu["seg"]["miou"], abs=0.5)
    experts = {"seg": expert, "depth": expert}
    a = fit_realignment(merged, experts, heads, data, n_images=24, ridge=1e-6)
    b = fit_realignment(merged, experts, heads, data, n_images=24, ridge=1e-6, device="cuda")
    for task in heads:
        assert b.stats[task]["residual_after"] == pytest.approx(a.stats[task]["residual_after"], abs=1e-4)
    assert all(p.device.type == "cpu" for p in [*merged.parameters(), *heads["seg"].parameters()])

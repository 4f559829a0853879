"""STAR and TSV-Merge on matrices built from known singular vectors, where the answer is exact."""

from __future__ import annotations

import torch

from simokit.merge import merge_state_dicts
from simokit.merge.methods.star import spectral_truncate_rescale
from simokit.merge.methods.tsv import task_singular_merge

W = "blocks.0.attn.proj.weight"
V = "blocks.0.ls1.gamma"


def _orthogonal(n: int, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(
        torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    )
    return q


def _low_rank(u: torch.Tensor, s: list[float], v: torch.Tensor) -> torch.Tensor:
    k = len(s)
    return u[:, :k] @ torch.diag(torch.tensor(s, dtype=u.dtype)) @ v[:, :k].T


def test_star_keeps_the_smallest_rank_holding_eta_and_restores_the_nuclear_norm() -> None:
    u, v = _orthogonal(6, 0), _orthogonal(6, 1)
    m = _low_rank(u, [3.0, 2.0, 1.0], v)  # Σσ = 6
    # η = 0.4: 3 ≥ 2.4 -> rank 1, σ1 rescaled to 6.
    assert torch.allclose(spectral_truncate_rescale(m, 0.4), _low_rank(u, [6.0], v), atol=1e-10)
    # η = 0.9: 3+2 < 5.4 -> rank 3, nothing changes.
    assert torch.allclose(spectral_truncate_rescale(m, 0.9), m, atol=1e-10)
    # η = 0.8: 3+2 ≥ 4.8 -> rank 2, σ scaled by 6/5.
    assert torch.allclose(spectral_truncate_rescale(m, 0.8), _low_rank(u, [3.6, 2.4], v), atol=1e-10)


def test_star_recovers_rank_one_matrices_and_averages() -> None:
    u, v = _orthogonal(6, 2), _orthogonal(6, 3)
    tau1, tau2 = _low_rank(u, [2.0], v), _low_rank(u[:, 1:], [5.0], v[:, 1:])
    base = {W: torch.zeros(6, 6, dtype=torch.float64), V: torch.zeros(3, dtype=torch.float64)}
    vec1, vec2 = torch.tensor([1.0, 2.0, 3.0]).double(), torch.tensor([3.0, 0.0, -1.0]).double()
    experts = [{W: tau1, V: vec1}, {W: tau2, V: vec2}]
    merged = merge_state_dicts(base, experts, "star")
    assert torch.allclose(merged[W], (tau1 + tau2) / 2, atol=1e-10)
    assert torch.allclose(merged[V], (vec1 + vec2) / 2)
    assert torch.allclose(merge_state_dicts(base, experts, "star", alpha=2.0)[W], tau1 + tau2, atol=1e-10)


def test_tsv_recovers_the_sum_of_tasks_in_orthogonal_subspaces() -> None:
    u, v = _orthogonal(8, 4), _orthogonal(8, 5)
    # T = 2 on 8×8 keeps rank 4 per task; the tasks use disjoint singular vectors.
    tau1 = _low_rank(u[:, :4], [4.0, 3.0, 2.0, 1.0], v[:, :4])
    tau2 = _low_rank(u[:, 4:], [5.0, 0.5, 0.4, 0.3], v[:, 4:])
    assert torch.allclose(task_singular_merge([tau1, tau2]), tau1 + tau2, atol=1e-10)


def test_tsv_truncates_each_task_to_its_share_of_the_rank() -> None:
    u, v = _orthogonal(8, 6), _orthogonal(8, 7)
    # τ1 is full rank; only its top 4 directions (orthogonal to τ2's) survive.
    tau1 = _low_rank(u, [8.0, 7.0, 6.0, 5.0, 0.4, 0.3, 0.2, 0.1], v)
    tau2 = _low_rank(u[:, 4:], [9.0, 3.0, 2.0, 1.0], v[:, 4:])
    expected = _low_rank(u, [8.0, 7.0, 6.0, 5.0], v) + tau2
    base = {W: torch.zeros(8, 8, dtype=torch.float64), V: torch.zeros(2, dtype=torch.float64)}
    experts = [
        {W: tau1, V: torch.tensor([1.0, 0.0]).double()},
        {W: tau2, V: torch.tensor([0.0, 3.0]).double()},
    ]
    merged = merge_state_dicts(base, experts, "tsv")
    assert torch.allclose(merged[W], expected, atol=1e-10)
    assert torch.allclose(merged[V], torch.tensor([0.5, 1.5]).double())
    assert torch.allclose(merge_state_dicts(base, experts, "tsv", alpha=0.5)[W], expected / 2, atol=1e-10)


def test_tsv_orthogonalises_overlapping_tasks() -> None:
    g = torch.Generator().manual_seed(8)
    taus = [torch.randn(6, 4, generator=g, dtype=torch.float64) for _ in range(2)]
    merged = task_singular_merge(taus)
    # Rebuild by hand: top-2 triplets each, polar factors of the concatenations.
    parts = [torch.linalg.svd(t, full_matrices=False) for t in taus]
    u = torch.cat([p[0][:, :2] for p in parts], dim=1)
    s = torch.cat([p[1][:2] for p in parts])
    vh = torch.cat([p[2][:2] for p in parts], dim=0)
    pu, _, qu = torch.linalg.svd(u, full_matrices=False)
    pv, _, qv = torch.linalg.svd(vh, full_matrices=False)
    u_perp, vh_perp = pu @ qu, pv @ qv
    assert torch.allclose(u_perp.T @ u_perp, torch.eye(4, dtype=torch.float64), atol=1e-10)
    assert torch.allclose(merged, u_perp @ torch.diag(s) @ vh_perp, atol=1e-10)

"""SiM router: exact residuals on constructed subspaces, routing separable data, hysteresis, files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from simokit.errors import ConfigError, ShapeError
from simokit.runtime.router import Hysteresis, SubspaceRouter, fit_basis, relative_residual


def test_residuals_by_hand() -> None:
    e1 = np.array([[1.0], [0.0], [0.0]], np.float32)
    x = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 3.0], [2.0, 0.0, 0.0]])
    np.testing.assert_allclose(relative_residual(x, e1), [0.5, 1.0, 0.0], atol=1e-12)


def test_fit_basis_recovers_a_subspace_and_its_rank() -> None:
    rng = np.random.default_rng(0)
    true = np.linalg.qr(rng.standard_normal((10, 3)))[0]
    support = rng.standard_normal((32, 3)) @ true.T  # 32 points spanning exactly 3 dims
    basis = fit_basis(support, energy=0.999, max_rank=8)
    assert basis.shape == (10, 3)
    np.testing.assert_allclose(basis.T @ basis, np.eye(3), atol=1e-5)
    inside = rng.standard_normal((5, 3)) @ true.T
    assert relative_residual(inside, basis).max() < 1e-10
    orth = np.linalg.qr(np.hstack([true, rng.standard_normal((10, 1))]))[0][:, 3]
    assert relative_residual(orth[None], basis)[0] == pytest.approx(1.0, abs=1e-6)
    assert fit_basis(support, energy=0.999, max_rank=2).shape == (10, 2)  # capped


@pytest.mark.parametrize("mode", ["pooled", "patch"])
def test_routes_separable_domains(mode: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    subspaces = [np.linalg.qr(rng.standard_normal((64, 4)))[0] for _ in range(3)]

    def sample(d: int, n: int) -> np.ndarray:
        shape = (n, 4) if mode == "pooled" else (n, 9, 4)
        clean = rng.standard_normal(shape) @ subspaces[d].T
        return clean + 0.1 * rng.standard_normal(clean.shape)

    support = [sample(d, 32) for d in range(3)]
    bases = [fit_basis(s.reshape(-1, 64), energy=0.9) for s in support]
    router = SubspaceRouter(("a", "b", "c"), bases, block=1, mode=mode)
    tests = np.concatenate([sample(d, 20) for d in range(3)])
    truth = np.repeat(np.arange(3), 20)
    assert (router.route(tests) == truth).mean() == 1.0
    router.save(tmp_path / "router.npz")
    again = SubspaceRouter.load(tmp_path / "router.npz")
    assert again.domains == ("a", "b", "c") and again.mode == mode and again.block == 1
    np.testing.assert_array_equal(again.route(tests), router.route(tests))
    assert router.size_bytes() == sum(b.nbytes for b in bases)


def test_hysteresis_needs_a_margin_to_switch() -> None:
    h = Hysteresis(margin=0.2)
    frames = [[0.5, 0.6], [0.5, 0.45], [0.5, 0.41], [0.5, 0.39], [0.35, 0.39], [0.3, 0.4]]
    # 0.45 and 0.41 are better but not by 20%: stay on 0; 0.39 < 0.8 * 0.5 switches; 0.35 is not
    # 20% below 0.39 so it stays on 1 until 0.3 < 0.8 * 0.4
    assert [h(np.array(f)) for f in frames] == [0, 0, 0, 1, 1, 0]
    assert h.switches == 2
    plain = Hysteresis(margin=0.0)
    assert [plain(np.array(f)) for f in frames] == [0, 1, 1, 1, 0, 0]


def test_bad_router_input_is_named() -> None:
    basis = np.eye(4, 2, dtype=np.float32)
    router = SubspaceRouter(("x", "y"), [basis, basis], block=0)
    with pytest.raises(ShapeError, match="grid router features must have 2 dims"):
        router.route(np.zeros((2, 5, 4)))
    with pytest.raises(ConfigError, match="at least two domains"):
        SubspaceRouter(("x",), [basis], block=0)
    with pytest.raises(ConfigError, match="mode"):
        SubspaceRouter(("x", "y"), [basis, basis], block=0, mode="cls")
    with pytest.raises(ShapeError, match="patch router features must have 3 dims"):
        SubspaceRouter(("x", "y"), [basis, basis], block=0, mode="patch").route(np.zeros((2, 4)))
    with pytest.raises(ShapeError, match=r"\(n, C\)"):
        fit_basis(np.zeros(4))
    with pytest.raises(ConfigError, match="margin"):
        Hysteresis(margin=1.5)


def test_grid_features_are_region_averages_and_refuse_odd_grids() -> None:
    import torch

    from simokit.models import build_encoder
    from simokit.routing.fit import GRID, RouterFeatures

    enc = build_encoder("vitnano14").eval()
    x = torch.randn(2, 3, 112, 112, generator=torch.Generator().manual_seed(0))
    feats = RouterFeatures(enc, 0, "grid")(x)
    (maps,) = enc.get_intermediate_layers(x, n=[0], reshape=True, norm=True)
    ref = torch.nn.functional.adaptive_avg_pool2d(maps, GRID).flatten(1)
    assert feats.shape == (2, 48 * GRID * GRID)
    torch.testing.assert_close(feats, ref, rtol=0, atol=1e-5)
    with pytest.raises(ShapeError, match="token grid divisible by 4"):
        RouterFeatures(enc, 0, "grid")(torch.zeros(1, 3, 70, 70))

"""Routed bundles: several domain engines + router round trip, per-frame routing, lazy engines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from simokit.data import to_tensor_batch
from simokit.export.onnx import ExportSpec
from simokit.models import HeadConfig, MultiTaskModel, build_encoder, build_head
from simokit.routing.bundle import write_routed_bundle
from simokit.routing.fit import RouterFeatures, build_router, router_features
from simokit.runtime import load
from simokit.runtime.bundle import is_routed
from simokit.runtime.routed import RoutedEngine

TASKS = ("seg", "depth")


def _model(seed: int) -> MultiTaskModel:
    torch.manual_seed(seed)
    heads = {
        "seg": build_head(HeadConfig("linear", 5, "none"), 48),
        "depth": build_head(HeadConfig("linear", 1, "exp"), 48),
    }
    return MultiTaskModel(build_encoder("vitnano14"), heads).eval()


def _frames(domain: str, n: int, seed: int) -> np.ndarray:
    """Two visually distinct 'domains': smooth warm gradients vs. high-frequency blue noise."""
    rng = np.random.default_rng(seed)
    if domain == "warm":
        ramp = np.linspace(0, 1, 56)[None, :, None] * rng.uniform(0.5, 1, (n, 1, 1, 1))
        img = np.concatenate([200 * ramp + 40, 120 * ramp + 20, 0 * ramp + 10], axis=-1)
        return np.broadcast_to(img, (n, 56, 56, 3)).astype(np.uint8)
    noise = rng.integers(0, 90, (n, 56, 56, 3))
    noise[..., 2] += 150
    return noise.astype(np.uint8)


BASE: dict[str, torch.nn.Module] = {}


@pytest.fixture(scope="module")
def routed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    base = BASE["encoder"] = build_encoder("vitnano14").eval()
    support = {d: to_tensor_batch(_frames(d, 12, seed=i)) for i, d in enumerate(("warm", "blue"))}
    router = build_router(base, support, block=0, mode="pooled", energy=0.95, max_rank=4)
    engines = {"warm": _model(1), "blue": _model(2)}
    spec = ExportSpec(TASKS, 56, 56, input_kind="uint8")
    images = {d: _frames(d, 2, seed=9) for d in engines}
    out = tmp_path_factory.mktemp("r") / "routed"
    return write_routed_bundle(out, engines, router, base, spec, images, {"margin": 0.2})


def test_routed_bundle_routes_each_frame_to_its_domain_engine(routed: Path) -> None:
    assert is_routed(routed) and not is_routed(routed / "domains" / "warm")
    engine = load(routed)
    assert isinstance(engine, RoutedEngine)
    warm, blue = _frames("warm", 3, seed=20), _frames("blue", 2, seed=21)
    mixed = np.concatenate([warm[:1], blue, warm[1:]])[..., ::-1].copy()  # BGR, interleaved
    out = engine.infer(mixed)
    assert engine.last_domains == ["warm", "blue", "blue", "warm", "warm"]
    alone = {d: load(routed / "domains" / d) for d in ("warm", "blue")}
    for i, domain in enumerate(engine.last_domains):
        ref = alone[domain].infer(mixed[i])
        for task in TASKS:
            np.testing.assert_allclose(out[task][i], ref[task], rtol=0, atol=1e-5)
    assert "warm 3" in engine.describe() and "blue 2" in engine.describe()


def test_engines_open_lazily_and_single_frames_have_hysteresis(routed: Path) -> None:
    engine = load(routed)
    assert isinstance(engine, RoutedEngine)
    for frame in _frames("warm", 3, seed=30):
        engine.infer(frame[..., ::-1].copy())
    assert list(engine.engines) == ["warm"]  # the blue engine was never needed, never loaded
    engine.infer(_frames("blue", 1, seed=31)[0][..., ::-1].copy())
    assert list(engine.engines) == ["warm", "blue"] and engine.hysteresis.switches == 1


def test_router_graph_matches_torch_features(routed: Path) -> None:
    import onnxruntime as ort

    frames = _frames("blue", 2, seed=40)
    session = ort.InferenceSession(str(routed / "router.onnx"), providers=["CPUExecutionProvider"])
    (feats,) = session.run(None, {"image": frames})
    ref = router_features(RouterFeatures(BASE["encoder"], block=0, mode="pooled"), to_tensor_batch(frames))  # type: ignore[arg-type]
    np.testing.assert_allclose(feats, ref, rtol=0, atol=1e-5)
    engine = load(routed)
    assert isinstance(engine, RoutedEngine)
    assert engine.route(frames) == ["blue", "blue"]


def test_router_threads_do_not_spin_and_profile_times_every_part(routed: Path) -> None:
    from simokit.profile.engine_bench import profile_routed, routed_table

    engine = load(routed, threads=1)
    assert isinstance(engine, RoutedEngine)
    # spinning router threads took the cores from the engine that runs right after (3x slower)
    options = engine.features.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    result = profile_routed(engine, batches=(1, 2), warmup=1, iters=3)
    parts = ["router (features + residuals)", "warm engine", "blue engine", "routed, end to end"]
    assert list(result["parts"]) == parts
    for rows in result["parts"].values():
        assert set(rows) == {"1", "2"} and all(r["p50_ms"] > 0 for r in rows.values())
    table = routed_table(result)
    assert all(f"| {p} |" in table for p in parts)

"""Delta bundles: one base graph plus per-domain weight deltas decode to each domain's graph exactly
(to float32 rounding), run through the robot's path, and refuse what they cannot do."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from simokit.data import to_tensor_batch
from simokit.export.onnx import ExportSpec, export_onnx
from simokit.models import DinoVisionTransformer, HeadConfig, MultiTaskModel, build_encoder, build_head
from simokit.routing.bundle import write_routed_bundle
from simokit.routing.compress import compress_delta
from simokit.routing.delta_encode import EXACT, DeltaError, encode_domain, save_delta, write_base
from simokit.routing.fit import build_router
from simokit.runtime import load
from simokit.runtime.bundle import BundleError, read_meta, require_graph
from simokit.runtime.delta_decode import decode, domain_initializers, matrix_shape
from simokit.runtime.routed import RoutedEngine
from tests.routing.test_routed import TASKS, _frames

SPEC = ExportSpec(TASKS, 56, 56, input_kind="uint8")


def _heads(seed: int) -> dict[str, torch.nn.Module]:
    torch.manual_seed(seed)
    return {
        "seg": build_head(HeadConfig("linear", 5, "none"), 48),
        "depth": build_head(HeadConfig("linear", 1, "exp"), 48),
    }


def _base() -> DinoVisionTransformer:
    """A random encoder with no two tensors alike, as after training: an untrained one has zero
    biases and unit norms, which the exporter shares or folds away, so its graph's structure would
    differ from the domains' (the build then refuses with DeltaError)."""
    torch.manual_seed(0)
    encoder = build_encoder("vitnano14").eval()
    with torch.no_grad():
        for p in encoder.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return encoder


def _domain_model(base: DinoVisionTransformer, seed: int, rank: int) -> MultiTaskModel:
    """base + a random delta cut to `rank` (what routing.delta: lowrank builds), fresh heads."""
    g = torch.Generator().manual_seed(seed)
    state = base.state_dict()
    merged = {
        k: v + 0.05 * torch.randn(v.shape, generator=g) if v.is_floating_point() else v
        for k, v in state.items()
    }
    compressed, _ = compress_delta(state, merged, "lowrank", rank=rank)
    encoder = copy.deepcopy(base)
    encoder.load_state_dict(compressed)
    return MultiTaskModel(encoder.eval(), _heads(seed)).eval()


@pytest.fixture(scope="module")
def graphs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    base = _base()
    work = tmp_path_factory.mktemp("g")
    domain = _domain_model(base, 1, rank=2)
    template = export_onnx(MultiTaskModel(base, _heads(0)), SPEC, work / "template.onnx")
    target = export_onnx(domain, SPEC, work / "domain.onnx")
    return {
        "base": base,
        "domain": domain,
        "template": onnx.load(str(template)),
        "target": onnx.load(str(target)),
        "work": work,
    }


def test_low_rank_deltas_are_found_and_decode_to_the_domain_weights(graphs: dict, tmp_path: Path) -> None:
    template, target = graphs["template"], graphs["target"]
    index = write_base(template, tmp_path, "base.onnx")
    encoded = encode_domain(template, target, set(index["tensors"]), rank_hint=2)
    assert encoded["counts"]["lowrank"] >= 2 * 4  # qkv, proj, fc1, fc2 per block at least
    (tmp_path / "d").mkdir()
    save_delta(encoded, tmp_path / "d" / "delta.npz")
    decoded = domain_initializers(tmp_path, tmp_path / "d")
    want = {t.name: numpy_helper.to_array(t) for t in target.graph.initializer}
    have = {t.name: numpy_helper.to_array(t) for t in template.graph.initializer}
    assert set(decoded) == {n for n in want if not np.array_equal(want[n], have[n])}
    for name, value in decoded.items():
        assert value.dtype == want[name].dtype and value.shape == want[name].shape
        assert np.abs(value - want[name]).max() <= EXACT * np.abs(want[name]).max(), name
    lowrank = [e for e in encoded["index"]["tensors"].values() if e["kind"] == "lowrank"]
    for entry in lowrank:  # a rank-2 delta is stored as rank 2: 2·(rows + cols) numbers
        m, n = matrix_shape(tuple(entry["shape"]))
        u, v = (encoded["arrays"][int(k[1:])] for k in entry["arrays"])
        assert u.shape == (m, 2) and v.shape == (2, n)
    full_bytes = sum(want[n].nbytes for n in decoded)
    assert encoded["bytes"] < 0.5 * full_bytes


def test_base_weights_are_aligned_and_memory_mapped(graphs: dict, tmp_path: Path) -> None:
    os.chdir(tmp_path)  # onnx's own converter refused when the data file's name existed in the cwd
    (tmp_path / "base.onnx.data").write_bytes(b"unrelated")
    folder = tmp_path / "bundle"
    folder.mkdir()
    index = write_base(graphs["template"], folder, "base.onnx")
    from simokit.runtime.delta_decode import base_tensor

    weights = {t.name: numpy_helper.to_array(t) for t in graphs["template"].graph.initializer}
    assert index["tensors"]
    for name, info in index["tensors"].items():
        assert info["offset"] % 64 == 0
        np.testing.assert_array_equal(base_tensor(folder, info), weights[name])
    small = [n for n, w in weights.items() if w.nbytes < 1024]
    assert small and not set(small) & set(index["tensors"])  # small tensors stay in the graph


def test_decode_of_each_kind_matches_its_formula() -> None:
    rng = np.random.default_rng(0)
    base = rng.standard_normal((4, 6)).astype(np.float32)
    u, v = rng.standard_normal((4, 1)).astype(np.float32), rng.standard_normal((1, 6)).astype(np.float32)
    got = decode({"kind": "lowrank", "shape": [4, 6]}, [u, v], base)
    np.testing.assert_allclose(got, base + u @ v, rtol=0, atol=1e-6)
    changed = np.zeros(24, bool)
    changed[[3, 17]] = True
    vals = np.array([1.5, -2.0], np.float32)
    want = base.reshape(-1).copy()
    want[[3, 17]] += vals
    np.testing.assert_array_equal(
        decode({"kind": "mask", "shape": [4, 6]}, [np.packbits(changed), vals], base), want.reshape(4, 6)
    )
    idx = np.array([3, 17], np.uint32)
    np.testing.assert_array_equal(
        decode({"kind": "index", "shape": [4, 6]}, [idx, vals], base), want.reshape(4, 6)
    )
    with pytest.raises(ValueError, match="needs the base"):
        decode({"kind": "mask", "shape": [4, 6]}, [np.packbits(changed), vals], None)


def test_graphs_of_different_structure_are_refused(graphs: dict) -> None:
    torch.manual_seed(3)
    other_heads = {
        "seg": build_head(HeadConfig("linear", 7, "none"), 48),
        "depth": build_head(HeadConfig("linear", 1, "exp"), 48),
    }
    other = export_onnx(MultiTaskModel(graphs["base"], other_heads), SPEC, graphs["work"] / "other.onnx")
    with pytest.raises(DeltaError, match="structure"):
        encode_domain(graphs["template"], onnx.load(str(other)), set())


@pytest.fixture(scope="module")
def delta_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, MultiTaskModel]]:
    base = _base()
    support = {d: to_tensor_batch(_frames(d, 12, seed=i)) for i, d in enumerate(("warm", "blue"))}
    router = build_router(base, support, block=0, mode="pooled", energy=0.95, max_rank=4)
    engines = {"warm": _domain_model(base, 1, rank=3), "blue": _domain_model(base, 2, rank=3)}
    images = {d: _frames(d, 2, seed=9) for d in engines}
    out = tmp_path_factory.mktemp("d") / "routed"
    write_routed_bundle(out, engines, router, base, SPEC, images, {"margin": 0.2}, deltas=True, rank_hint=3)
    return out, engines


def test_delta_bundle_round_trip_matches_torch_per_domain(delta_bundle: tuple[Path, dict]) -> None:
    root, engines = delta_bundle
    assert not (root / "model.onnx").exists() and (root / "base.onnx").is_file()
    meta = read_meta(root)
    storage = meta.extra["routing"]["storage"]
    assert meta.extra["routing"]["weights"] == "delta"
    assert storage["bundle_bytes"] < storage["full_engine_bytes"]
    for domain in engines:  # the build verified base + delta against torch, through the runtime path
        checks = read_meta(root / "domains" / domain).extra["verifications"]
        assert checks[-1]["graph"] == "fp32, base + delta" and all(
            e["ok"] for e in checks[-1]["outputs"].values()
        )
    engine = load(root)
    assert isinstance(engine, RoutedEngine)
    frames = np.concatenate([_frames("warm", 2, seed=20), _frames("blue", 2, seed=21)])
    out = engine.infer(frames, bgr=False, resize_back=False)
    assert engine.last_domains == ["warm", "warm", "blue", "blue"]
    from simokit.export.onnx import ExportModule

    with torch.no_grad():
        for i, domain in enumerate(engine.last_domains):
            ref = ExportModule(engines[domain], SPEC)(torch.from_numpy(frames[i : i + 1].copy()))
            np.testing.assert_allclose(out["seg"][i], ref[0][0].numpy(), rtol=0, atol=1e-4)
            rel = np.abs(out["depth"][i] - ref[1][0].numpy()) / np.maximum(np.abs(ref[1][0].numpy()), 1)
            assert rel.max() < 1e-4


def test_router_reads_its_weights_from_the_base(delta_bundle: tuple[Path, dict]) -> None:
    root, _ = delta_bundle
    router = onnx.load(str(root / "router.onnx"), load_external_data=False)
    external = [t for t in router.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert external and all(
        e.value == "base.onnx.data" for t in external for e in t.external_data if e.key == "location"
    )


def test_delta_bundles_refuse_what_they_cannot_run(delta_bundle: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = delta_bundle
    with pytest.raises(BundleError, match="weight deltas"):
        require_graph(root, "build-engine")
    for where, kwargs in (
        ("domains/warm", {"precision": "fp16"}),
        ("domains/warm", {"backend": "tensorrt"}),
        (".", {"backend": "tensorrt"}),  # the routed bundle itself: refused at load, not at a frame
        (".", {"backend": "torch"}),
    ):
        with pytest.raises(BundleError, match="fp32 only"):
            load(root / where, **kwargs)  # type: ignore[arg-type]
    import json
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(root, broken)
    (broken / "domains" / "warm" / "delta.npz").write_bytes(b"not an npz")
    meta = json.loads((broken / "meta.json").read_text())
    del meta["files"]  # without the file table (older bundles) the decoder itself names the file
    (broken / "meta.json").write_text(json.dumps(meta))
    engine = load(broken)
    with pytest.raises(BundleError, match=r"delta\.npz: not a readable weight delta"):
        engine.infer(_frames("warm", 1, seed=5)[0], bgr=False)


def test_delta_bundle_records_every_file_and_names_a_truncated_delta(
    delta_bundle: tuple[Path, dict], tmp_path: Path
) -> None:
    import json
    import shutil

    from simokit.runtime.bundle import BundleError
    from simokit.runtime.manifest import verify_folder

    copy = Path(shutil.copytree(delta_bundle[0], tmp_path / "copy"))
    files = json.loads((copy / "meta.json").read_text())["files"]
    deltas = [f for f in files if f.endswith(".npz")]
    assert deltas and any(f.endswith("base.onnx.data") for f in files)
    assert verify_folder(copy) == len(files)
    victim = copy / deltas[0]
    victim.write_bytes(victim.read_bytes()[:-100])
    with pytest.raises(BundleError, match=deltas[0].replace(".", r"\.") + r": \d+ bytes, but"):
        load(copy)

"""Tests for the procedural scene renderer, batch generation and the on-disk scene cache."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest

from simokit.data import scenes
from simokit.data.labels import CLASS_ID, CLASS_NAMES, DOMAINS, PALETTE, TASK_KEYS
from simokit.data.scene.camera import Camera
from simokit.data.scene.geometry import Plane, Sphere
from simokit.data.scene.materials import Material
from simokit.data.scene.render import render
from simokit.data.scene.world import Item, Light, Scene
from simokit.errors import ConfigError

SIZE = 56


def _digest(out: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for key in sorted(out):
        h.update(key.encode())
        h.update(np.ascontiguousarray(out[key]).tobytes())
    return h.hexdigest()


def _view_rays(k: np.ndarray, height: int, width: int) -> np.ndarray:
    u, v = np.meshgrid(np.arange(width), np.arange(height))
    return np.stack([(u - k[0, 2]) / k[0, 0], (v - k[1, 2]) / k[1, 1], np.ones((height, width))], -1)


@pytest.fixture(scope="module")
def renders() -> list[tuple[str, dict[str, np.ndarray]]]:
    return [(d, scenes.render_scene(seed, d, 112)) for seed in range(6) for d in DOMAINS]


def test_constants() -> None:
    assert CLASS_NAMES == (
        "floor", "wall", "ceiling", "furniture", "ball", "pillar",
        "road", "building", "vegetation", "vehicle", "sky",
    )  # fmt: skip
    assert PALETTE.shape == (11, 3) and PALETTE.dtype == np.uint8
    assert len({tuple(c) for c in PALETTE}) == 11
    assert DOMAINS == ("indoor", "outdoor")
    assert TASK_KEYS == ("seg", "depth", "normal", "edge", "shading", "relative_depth")


def test_shapes_dtypes_and_ranges(renders: list[tuple[str, dict[str, np.ndarray]]]) -> None:
    for domain, out in renders:
        assert out["image"].shape == (112, 112, 3) and out["image"].dtype == np.uint8
        assert out["seg"].shape == (112, 112) and out["seg"].dtype == np.uint8
        assert out["seg"].max() < len(CLASS_NAMES)
        for key in ("depth", "edge", "shading"):
            assert out[key].shape == (112, 112) and out[key].dtype == np.float32
        assert out["normal"].shape == (112, 112, 3) and out["normal"].dtype == np.float32
        assert out["intrinsics"].shape == (3, 3)
        assert np.all(np.isfinite(out["depth"])) and out["depth"].min() > 0
        for key in ("edge", "shading"):
            assert out[key].min() >= 0.0 and out[key].max() <= 1.0
        sky = out["seg"] == CLASS_ID["sky"]
        if domain == "outdoor":
            assert np.all(out["depth"][sky] == 60.0) and out["depth"].max() <= 60.0
        else:
            assert not sky.any()


def test_rectangular_size() -> None:
    out = scenes.render_scene(1, "outdoor", (40, 64))
    assert out["image"].shape == (40, 64, 3) and out["depth"].shape == (40, 64)


def test_normals_are_unit_and_face_the_camera(renders: list[tuple[str, dict[str, np.ndarray]]]) -> None:
    for _, out in renders:
        n = out["normal"].astype(np.float64)
        assert np.abs(np.linalg.norm(n, axis=-1) - 1.0).max() < 1e-4
        rays = _view_rays(out["intrinsics"].astype(np.float64), 112, 112)
        assert (n * rays).sum(-1).max() < 0.0


def test_normals_match_depth_gradients_on_planes(renders: list[tuple[str, dict[str, np.ndarray]]]) -> None:
    checked = 0
    for _, out in renders:
        z = out["depth"].astype(np.float64)
        P = _view_rays(out["intrinsics"].astype(np.float64), 112, 112) * z[..., None]
        du = P[1:-1, 2:] - P[1:-1, :-2]
        dv = P[2:, 1:-1] - P[:-2, 1:-1]
        est = -np.cross(du, dv)  # camera x right, y down, z forward: surfaces facing us have -z normals
        est /= np.linalg.norm(est, axis=-1, keepdims=True)
        n, seg = out["normal"], out["seg"]
        # Interior of one flat surface: all 4 neighbours share the label and the stored normal, and 1/z is
        # affine along both axes (excludes steps such as a rug edge or a curb between parallel surfaces).
        inside = np.ones((110, 110), dtype=bool)
        inv = 1.0 / z
        for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            nb = (slice(1 + dy, 111 + dy), slice(1 + dx, 111 + dx))
            inside &= (seg[nb] == seg[1:-1, 1:-1]) & (np.abs(n[nb] - n[1:-1, 1:-1]).max(-1) < 1e-6)
        inside &= np.abs(inv[1:-1, 2:] + inv[1:-1, :-2] - 2 * inv[1:-1, 1:-1]) < 1e-4 * inv[1:-1, 1:-1]
        inside &= np.abs(inv[2:, 1:-1] + inv[:-2, 1:-1] - 2 * inv[1:-1, 1:-1]) < 1e-4 * inv[1:-1, 1:-1]
        floor = inside & (seg[1:-1, 1:-1] == CLASS_ID["floor"])
        cos = (est * n[1:-1, 1:-1]).sum(-1)
        assert np.all(cos[floor] > 0.99)
        assert np.all(cos[inside & (seg[1:-1, 1:-1] != CLASS_ID["sky"])] > 0.99)
        checked += int(floor.sum())
    assert checked > 5000


def _plain(rgb: tuple[float, float, float], kind: str = "plain") -> Material:
    return Material(kind, np.array(rgb), np.array([0.9, 0.9, 0.9]), 0.5, 0.0, 0.5, 0.0, np.zeros((16, 16)))


def _known_scene() -> Scene:
    # Camera 1.5 m up looking along +Y at a wall 5 m away; a ball 3 m ahead at eye level; light from above.
    camera = Camera(position=(0.0, 0.0, 1.5), yaw=0.0, pitch=0.0, fov_x=math.radians(90.0))
    items = (
        Item(Plane((0.0, 0.0, 1.0), 0.0), CLASS_ID["floor"], 0, casts_shadow=False),
        Item(Plane((0.0, 1.0, 0.0), 5.0), CLASS_ID["wall"], 1, casts_shadow=False),
        Item(Sphere((0.0, 3.0, 1.5), 0.5), CLASS_ID["ball"], 2),
    )
    materials = (_plain((0.5, 0.4, 0.3)), _plain((0.2, 0.6, 0.8)), _plain((0.8, 0.1, 0.1)))
    return Scene(camera, items, materials, (Light("directional", (0.0, 0.0, 1.0), 0.5),), ambient=0.2)


def test_known_geometry_gives_exact_depth_labels_and_shading() -> None:
    out = render(_known_scene(), 33, 33)
    f = out["intrinsics"][0, 0]
    assert out["intrinsics"][0, 2] == 16.0 and f == pytest.approx(16.5)
    # Centre pixel looks straight at the front of the ball.
    assert out["seg"][16, 16] == CLASS_ID["ball"]
    assert out["depth"][16, 16] == pytest.approx(2.5, abs=1e-5)
    np.testing.assert_allclose(out["normal"][16, 16], [0.0, 0.0, -1.0], atol=1e-5)
    # Upper corner: the wall, whose z-depth is 5 m at every pixel, facing the camera.
    assert out["seg"][0, 0] == CLASS_ID["wall"]
    assert out["depth"][0, 0] == pytest.approx(5.0, abs=1e-5)
    np.testing.assert_allclose(out["normal"][0, 0], [0.0, 0.0, -1.0], atol=1e-5)
    # Bottom row: the floor at z = 1.5 * f / (v - cy), normal pointing up (= camera -y here).
    assert out["seg"][32, 16] == CLASS_ID["floor"]
    assert out["depth"][32, 16] == pytest.approx(1.5 * f / 16.0, rel=1e-5)
    np.testing.assert_allclose(out["normal"][32, 16], [0.0, -1.0, 0.0], atol=1e-5)
    # Lit floor = ambient + light; the wall is edge-on to the light; the floor under the ball is shadowed.
    assert out["shading"][32, 16] == pytest.approx(0.7, abs=1e-6)
    assert out["shading"][0, 0] == pytest.approx(0.2, abs=1e-6)
    assert out["shading"][24, 16] == pytest.approx(0.2, abs=1e-6)
    assert render(_known_scene(), 33, 33, shadows=False)["shading"][24, 16] == pytest.approx(0.7, abs=1e-6)
    np.testing.assert_array_equal(out["image"][32, 16], np.round(np.array([0.5, 0.4, 0.3]) * 0.7 * 255))
    # Plain materials have no texture, so object outlines must not show up as edges.
    assert out["edge"].max() == 0.0


def test_edges_follow_texture_not_geometry() -> None:
    scene = _known_scene()
    checker = _plain((0.1, 0.1, 0.1), kind="checker")
    scene = Scene(scene.camera, scene.items, (checker, *scene.materials[1:]), scene.lights, scene.ambient)
    out = render(scene, 33, 33)
    floor = out["seg"] == CLASS_ID["floor"]
    assert out["edge"][floor].max() > 0.5
    assert out["edge"][~floor].max() == 0.0


def test_same_seed_same_bytes_and_different_seed_differs() -> None:
    a = scenes.render_scene(7, "outdoor", SIZE)
    assert _digest(a) == _digest(scenes.render_scene(7, "outdoor", SIZE))
    assert _digest(a) != _digest(scenes.render_scene(8, "outdoor", SIZE))
    assert _digest(a) != _digest(scenes.render_scene(7, "indoor", SIZE))


def test_generate_is_independent_of_workers() -> None:
    one = scenes.generate(4, SIZE, seed=3, workers=1, progress=False)
    two = scenes.generate(4, SIZE, seed=3, workers=2, progress=False)
    for key in ("image", "domain", *TASK_KEYS):
        np.testing.assert_array_equal(getattr(one, key), getattr(two, key))
    np.testing.assert_array_equal(one.domain, [0, 1, 0, 1])
    ref = scenes.render_scene(scenes.image_seed(3, 1), "outdoor", SIZE)
    np.testing.assert_array_equal(one.image[1], ref["image"])
    assert one.normal is not None and one.normal.shape == (4, SIZE, SIZE, 3)


def test_all_classes_appear() -> None:
    data = scenes.generate(40, SIZE, seed=0, workers=2, progress=False)
    assert data.seg is not None
    assert set(np.unique(data.seg).tolist()) == set(range(len(CLASS_NAMES)))


def test_task_subset_and_scene_arrays_api() -> None:
    data = scenes.generate(3, SIZE, domains=("outdoor",), tasks=("seg", "depth"), workers=1, progress=False)
    assert data.tasks == ("seg", "depth") and data.normal is None and data.edge is None
    assert len(data) == 3 and data.domain.tolist() == [1, 1, 1]
    sub = data.subset([2, 0])
    assert len(sub) == 2
    np.testing.assert_array_equal(sub.image[0], data.image[2])
    targets = data.targets(1)
    assert set(targets) == {"seg", "depth"} and targets["seg"].shape == (SIZE, SIZE)
    batch = data.batch([0, 1])
    assert set(batch) == {"image", "seg", "depth"} and batch["image"].shape == (2, SIZE, SIZE, 3)


def test_invalid_arguments_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="domain"):
        scenes.render_scene(0, "underwater")
    with pytest.raises(ConfigError, match="seed"):
        scenes.render_scene(-1, "indoor")
    with pytest.raises(ConfigError, match="size"):
        scenes.render_scene(0, "indoor", 4)
    with pytest.raises(ConfigError, match="tasks"):
        scenes.generate(1, SIZE, tasks=("seg", "flow"), progress=False)
    with pytest.raises(ConfigError, match="domains"):
        scenes.generate(1, SIZE, domains=(), progress=False)


def test_load_scenes_reads_back_from_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIMOKIT_CACHE", str(tmp_path))
    first = scenes.load_scenes("train", 4, SIZE, workers=1, progress=False)
    folders = list((tmp_path / "scenes").iterdir())
    assert len(folders) == 1 and (folders[0] / "meta.json").is_file()
    assert not list(folders[0].glob(".*.tmp"))

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("load_scenes rendered again instead of reading the cache")

    monkeypatch.setattr(scenes, "generate", fail)
    second = scenes.load_scenes("train", 4, SIZE, workers=1, progress=False)
    assert isinstance(second.image, np.memmap)
    for key in ("image", "domain", *TASK_KEYS):
        np.testing.assert_array_equal(getattr(first, key), getattr(second, key))


def test_incomplete_cache_is_regenerated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIMOKIT_CACHE", str(tmp_path))
    first = scenes.load_scenes("val", 2, SIZE, workers=1, progress=False)
    folder = next((tmp_path / "scenes").iterdir())
    (folder / "meta.json").unlink()  # as if the writer died before finishing
    (folder / "depth.npy").write_bytes(b"garbage")
    again = scenes.load_scenes("val", 2, SIZE, workers=1, progress=False)
    assert again.depth is not None and first.depth is not None
    np.testing.assert_array_equal(again.depth, first.depth)
    assert (folder / "meta.json").is_file()


def test_splits_are_disjoint() -> None:
    names = ("train", "val", "test", "calib")
    assert len({scenes.split_seed(s) for s in names}) == len(names)
    seeds = [{scenes.image_seed(scenes.split_seed(s), i) for i in range(200)} for s in names]
    assert sum(len(s) for s in seeds) == len(set().union(*seeds))
    train = scenes.load_scenes("train", 6, SIZE, cache=False, workers=1, progress=False)
    val = scenes.load_scenes("val", 6, SIZE, cache=False, workers=1, progress=False)
    hashes = [{hashlib.sha256(im.tobytes()).hexdigest() for im in d.image} for d in (train, val)]
    assert len(hashes[0]) == 6 and not hashes[0] & hashes[1]

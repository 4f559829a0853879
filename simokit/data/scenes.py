"""Deterministic procedural multi-task benchmark: render, batch-generate and cache indoor/outdoor scenes."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from simokit.cache import atomic_path, cache_root, config_key
from simokit.data.arrays import SceneArrays
from simokit.data.labels import CLASS_NAMES, DOMAINS, PALETTE, TASK_KEYS
from simokit.data.scene.indoor import build_indoor
from simokit.data.scene.outdoor import build_outdoor
from simokit.data.scene.render import render
from simokit.data.targets import IMAGE, TARGETS
from simokit.errors import ConfigError

__all__ = [
    "CLASS_NAMES",
    "DOMAINS",
    "PALETTE",
    "TASK_KEYS",
    "SceneArrays",
    "generate",
    "image_seed",
    "load_scenes",
    "render_scene",
    "split_seed",
]

RENDER_VERSION = 1  # bump whenever rendering changes so stale caches are not reused


def _hw(size: int | tuple[int, int]) -> tuple[int, int]:
    """Return (H, W) from an int or an (H, W) pair."""
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if len(hw) != 2 or not all(isinstance(v, (int, np.integer)) and v >= 8 for v in hw):
        raise ConfigError(f"scene size must be an int or (height, width) of ints >= 8; got {size!r}")
    return int(hw[0]), int(hw[1])


def _check_seed(seed: int) -> int:
    """Return seed as int, rejecting negatives."""
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"scene seed must be a non-negative integer; got {seed!r}")
    return int(seed)


def _check_domains(domains: Sequence[str]) -> tuple[str, ...]:
    """Return domains as a tuple, rejecting unknown or empty ones."""
    bad = [d for d in domains if d not in DOMAINS]
    if bad or not domains:
        raise ConfigError(f"scene domains must be a non-empty subset of {DOMAINS}; got {tuple(domains)!r}")
    return tuple(domains)


def render_scene(
    seed: int, domain: str, size: int | tuple[int, int] = 112, shadows: bool = True
) -> dict[str, np.ndarray]:
    """Render one scene; `size` is an int or (H, W). Same (seed, domain, size) gives the same bytes.

    Returns image (H, W, 3) uint8 RGB; seg (H, W) uint8 ids into CLASS_NAMES; depth (H, W) float32
    camera z-depth in metres (outdoor sky is a backdrop at 60 m); normal (H, W, 3) float32 unit
    normals in the camera frame (x right, y down, z forward), facing the camera (dot with the view ray
    < 0); edge (H, W) float32 in [0, 1], albedo-texture gradient magnitude; shading (H, W) float32 in
    [0, 1], Lambertian light without albedo (1 on sky); relative_depth (H, W) float32 inverse depth
    1 / depth in 1/m; intrinsics (3, 3) float32 pinhole K with pixel
    centres at integer coordinates.
    """
    hw = _hw(size)
    if domain not in DOMAINS:
        raise ConfigError(f"unknown scene domain '{domain}'; choose from {', '.join(DOMAINS)}")
    rng = np.random.default_rng([_check_seed(seed), DOMAINS.index(domain)])
    scene = build_indoor(rng) if domain == "indoor" else build_outdoor(rng)
    return render(scene, hw[0], hw[1], shadows=shadows)


def image_seed(seed: int, index: int) -> int:
    """Return the render seed of image `index` in a set generated with `seed` (independent of workers)."""
    state = np.random.SeedSequence([_check_seed(seed), int(index)]).generate_state(2, np.uint32)
    return int(state[0]) | (int(state[1]) << 32)


def split_seed(split: str, seed: int = 0) -> int:
    """Return a base seed for a named split; different names give unrelated (disjoint) image seeds."""
    digest = hashlib.sha256(f"simokit-scenes/{split}/{_check_seed(seed)}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def _render_job(job: tuple[int, str, tuple[int, int], tuple[str, ...]]) -> dict[str, np.ndarray]:
    """Render one job (seed, domain, (H, W), fields) in a worker and keep only the requested fields."""
    seed, domain, hw, keep = job
    out = render_scene(seed, domain, hw)
    return {k: out[k] for k in keep}


def generate(
    n: int,
    size: int | tuple[int, int] = 112,
    domains: Sequence[str] = DOMAINS,
    seed: int = 0,
    tasks: Sequence[str] = TASK_KEYS,
    workers: int = 2,
    progress: bool = True,
) -> SceneArrays:
    """Render n scenes into stacked arrays; image i uses domains[i % len(domains)] and image_seed(seed, i).

    With workers > 1 the render processes start from a fork server, so a script calling this needs
    the usual `if __name__ == "__main__":` guard (the `simokit` command has it).
    """
    h, w = _hw(size)
    domains = _check_domains(domains)
    seed = _check_seed(seed)
    bad = [t for t in tasks if t not in TASK_KEYS]
    if bad:
        raise ConfigError(f"unknown scene tasks {bad}; choose from {', '.join(TASK_KEYS)}")
    if n < 0 or workers < 1:
        raise ConfigError(f"generate needs n >= 0 and workers >= 1; got n={n}, workers={workers}")
    keep = ("image", *(t for t in TASK_KEYS if t in tasks))
    layouts = {"image": IMAGE, **TARGETS}
    out = {k: np.zeros((n, h, w, *layouts[k].shape), dtype=layouts[k].dtype) for k in keep}
    jobs = [(image_seed(seed, i), domains[i % len(domains)], (h, w), keep) for i in range(n)]
    bar = tqdm(total=n, desc="rendering scenes", disable=not progress, unit="img")
    if workers > 1 and n > 1:
        chunk = max(1, min(16, n // (4 * workers)))
        # forkserver, not fork: a forked child inherits locks held by the parent's other threads (ONNX
        # Runtime's pool, a camera stream) and can hang forever; the render workers import only numpy.
        with multiprocessing.get_context("forkserver").Pool(min(workers, n)) as pool:
            for i, res in enumerate(pool.imap(_render_job, jobs, chunksize=chunk)):
                for k in keep:
                    out[k][i] = res[k]
                bar.update()
    else:
        for i, job in enumerate(jobs):
            res = _render_job(job)
            for k in keep:
                out[k][i] = res[k]
            bar.update()
    bar.close()
    domain_ids = np.array([DOMAINS.index(domains[i % len(domains)]) for i in range(n)], dtype=np.uint8)
    return SceneArrays(domain=domain_ids, **out)


def _cache_dir(config: dict[str, Any]) -> Path:
    """Return the cache folder for one load_scenes configuration."""
    return cache_root() / "scenes" / config_key(config)


def _read_cache(folder: Path, config: dict[str, Any]) -> SceneArrays | None:
    """Return the cached arrays, or None when the cache is absent, incomplete or from another config."""
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("config") != config:
            return None
        arrays = {k: np.load(folder / f"{k}.npy", mmap_mode="r") for k in meta["fields"]}
        if any(list(arrays[k].shape) != meta["shapes"][k] for k in arrays):
            return None
        if "relative_depth" not in arrays and "depth" in arrays:
            # caches written before the task existed: it is exactly the inverse of the rendered depth
            depth = np.asarray(arrays["depth"])
            arrays["relative_depth"] = np.where(depth > 0, 1.0 / np.maximum(depth, 1e-6), 0.0).astype(
                np.float32
            )
        return SceneArrays(**arrays)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_cache(folder: Path, config: dict[str, Any], arrays: SceneArrays) -> None:
    """Write every field as .npy, then meta.json last, each atomically, so readers never see a partial set."""
    present = {f.name: getattr(arrays, f.name) for f in fields(arrays) if getattr(arrays, f.name) is not None}
    for name, value in present.items():
        with atomic_path(folder / f"{name}.npy") as tmp, open(tmp, "wb") as fh:
            np.save(fh, value)
    meta = {
        "config": config,
        "fields": list(present),
        "shapes": {k: list(v.shape) for k, v in present.items()},
    }
    with atomic_path(folder / "meta.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=1))


def load_scenes(
    split: str,
    n: int,
    size: int | tuple[int, int] = 112,
    domains: Sequence[str] = DOMAINS,
    seed: int = 0,
    cache: bool = True,
    workers: int = 2,
    progress: bool = True,
) -> SceneArrays:
    """Return split `split` (n scenes, all tasks), reading/writing cache_root()/scenes/<key>/*.npy."""
    if not isinstance(split, str) or not split:
        raise ConfigError(f"split must be a non-empty string such as 'train' or 'val'; got {split!r}")
    h, w = _hw(size)
    config = {
        "version": RENDER_VERSION,
        "split": split,
        "n": int(n),
        "size": [h, w],
        "domains": list(_check_domains(domains)),
        "seed": _check_seed(seed),
    }
    folder = _cache_dir(config)
    if cache:
        cached = _read_cache(folder, config)
        if cached is not None:
            return cached
    arrays = generate(n, (h, w), domains, split_seed(split, seed), workers=workers, progress=progress)
    if cache:
        _write_cache(folder, config, arrays)
    return arrays

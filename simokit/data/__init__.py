"""Datasets: the procedural multi-task scene benchmark, NYUv2-layout folders and torch transforms.

The transforms need torch and are imported lazily, so rendering and loading work with numpy alone.
"""

from __future__ import annotations

from typing import Any

from simokit.data.arrays import SceneArrays
from simokit.data.folders import NYUv2Folder
from simokit.data.labels import CLASS_NAMES, DOMAINS, IGNORE_LABEL, PALETTE, TASK_KEYS
from simokit.data.scenes import generate, image_seed, load_scenes, render_scene, split_seed

_TRANSFORMS = ("IMAGENET_MEAN", "IMAGENET_STD", "hflip", "targets_to_tensors", "to_tensor_batch")

__all__ = [
    "CLASS_NAMES",
    "DOMAINS",
    "IGNORE_LABEL",
    "PALETTE",
    "TASK_KEYS",
    "NYUv2Folder",
    "SceneArrays",
    "generate",
    "image_seed",
    "load_scenes",
    "render_scene",
    "split_seed",
    *_TRANSFORMS,
]


def __getattr__(name: str) -> Any:
    """Import torch-backed transforms on first use."""
    if name in _TRANSFORMS:
        from simokit.data import transforms

        return getattr(transforms, name)
    raise AttributeError(f"module 'simokit.data' has no attribute '{name}'")

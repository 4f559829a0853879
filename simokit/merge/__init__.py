"""Merging of task-expert encoders: task vectors, the method registry, in-memory and streaming APIs."""

from __future__ import annotations

from simokit.merge.api import merge_state_dicts
from simokit.merge.methods.base import MergeMethod, MergeParams, MergeSetup
from simokit.merge.methods.tall_mask import tall_masks
from simokit.merge.registry import available_methods, build_method, get_method, register
from simokit.merge.streaming import merge_files

__all__ = [
    "MergeMethod",
    "MergeParams",
    "MergeSetup",
    "available_methods",
    "build_method",
    "get_method",
    "merge_files",
    "merge_state_dicts",
    "register",
    "tall_masks",
]

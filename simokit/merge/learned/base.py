"""The learned-merge capability: what a learned method may learn from, and what learning returns."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import Tensor

from simokit.merge.features import Part
from simokit.merge.methods.base import MergeMethod, P
from simokit.merge.select import Candidate
from simokit.models import DinoVisionTransformer


@dataclass
class LearnContext:
    """The models, unlabelled images and grid results a learned merge may learn from."""

    encoder: DinoVisionTransformer  # the architecture with the base's weights (replaced functionally)
    base: dict[str, Tensor]
    experts: dict[str, dict[str, Tensor]]
    parts: dict[str, list[Part]]  # per task, the (block, part) features its head reads
    images: Tensor  # (N, 3, H, W) unlabelled calibration images
    earlier: list[Candidate] = field(default_factory=list)  # grid candidates scored before learning
    select: str = "tap_aligned"  # the study's selection criterion, for picks among `earlier`
    device: str = "cpu"
    progress: bool = False


@dataclass
class Learned:
    """A grid entry with its learned numbers filled in, a readable label and a JSON-safe report."""

    hparams: dict[str, Any]
    label: str
    report: dict[str, Any]


class LearnedMerge(MergeMethod[P]):
    """A merge method that learns part of its hyper-parameters; it merges only once they are learned.

    Studies score grid methods first and learned ones after, so a learned merge can start from
    what the grid selected.
    """

    seconds_key: ClassVar[str] = "learn"  # the study's timing entry for the learning

    @classmethod
    @abstractmethod
    def learn(cls, hparams: dict[str, Any], ctx: LearnContext) -> Learned:
        """Learn the missing numbers of grid entry `hparams` from `ctx`."""

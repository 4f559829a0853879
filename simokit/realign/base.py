"""What every re-aligner shares: its settings, where expert features come from, and its result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from simokit.data import SceneArrays
from simokit.merge.features import BatchFeatures
from simokit.models import DinoVisionTransformer, MultiTaskModel
from simokit.models.heads import DenseHead
from simokit.recipe import MergeConfig


@dataclass(frozen=True)
class RealignSettings:
    """How much data and optimisation a re-aligner may use; each reads the fields it needs."""

    n_images: int = 128  # calibration images used
    ridge: float = 1e-3  # least squares: shrinkage towards the identity map
    steps: int = 100  # fine-tuning and LoRA: optimiser steps
    lr: float = 1e-3  # fine-tuning and LoRA: learning rate
    batch: int = 32
    device: str = "cpu"  # least squares: where encoders run (the fits stay on CPU)

    @classmethod
    def of(cls, cfg: MergeConfig) -> RealignSettings:
        """The settings a merge recipe gives every re-aligner."""
        return cls(cfg.realign_images, cfg.ridge, cfg.finetune_steps, cfg.finetune_lr, cfg.batch, cfg.device)


@dataclass
class ExpertTargets:
    """The expert features least squares fits towards: from the encoders, or collected already
    (`features.collect` on the same images and batch size, so a grid search runs the experts once)."""

    encoders: dict[str, DinoVisionTransformer] = field(default_factory=dict)
    features: dict[str, list[BatchFeatures]] | None = None


@dataclass
class RealignResult:
    """Folded heads plus per-task fit statistics (relative residual before and after the map)."""

    heads: dict[str, DenseHead]
    stats: dict[str, dict[str, float]] = field(default_factory=dict)
    images: int = 0
    encoder: DinoVisionTransformer | None = None  # set when re-alignment changed the encoder (LoRA)


class Realigner(Protocol):
    """The one entry point every registered re-aligner has."""

    def __call__(
        self,
        merged: DinoVisionTransformer,
        heads: dict[str, DenseHead],
        data: SceneArrays,
        settings: RealignSettings,
        experts: ExpertTargets,
    ) -> RealignResult:
        """Re-align `merged` to `heads` on `data`; return the new heads (and encoder, if changed)."""
        ...


def realigned_model(merged: DinoVisionTransformer, result: RealignResult) -> MultiTaskModel:
    """The deployable model: merged (or re-aligned) encoder with the folded (or tuned) heads."""
    return MultiTaskModel(result.encoder or merged, dict(result.heads)).eval()

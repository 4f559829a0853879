"""Recipes for the embedded benchmark: data, base pre-training and two-stage expert fine-tuning.

The defaults here are the demo's recipe; `configs/demo.yaml` spells out the same values so a
user can copy and edit it, and a test keeps the two in step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simokit.errors import ConfigError


@dataclass(frozen=True)
class DataConfig:
    """Which procedural scenes to render: image size, split sizes, domains and seed."""

    size: int = 112
    train: int = 2048
    val: int = 256
    domains: tuple[str, ...] = ("indoor", "outdoor")
    seed: int = 0

    def __post_init__(self) -> None:
        if self.size % 14:
            raise ConfigError(f"data.size={self.size} must be a multiple of the patch size 14")
        if self.train < 1 or self.val < 1:
            raise ConfigError("data.train and data.val must be positive")


@dataclass(frozen=True)
class BaseConfig:
    """Masked-image-modelling pre-training of the small base ViT."""

    encoder: str = "vitmicro14"
    steps: int = 400
    batch: int = 32
    lr: float = 1.5e-3
    weight_decay: float = 0.05
    warmup: int = 40
    mask_ratio: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.mask_ratio < 1.0:
            raise ConfigError(f"base.mask_ratio={self.mask_ratio} must lie in (0, 1)")


@dataclass(frozen=True)
class StageConfig:
    """One optimisation stage: steps, peak learning rate (AdamW, cosine) and warm-up steps."""

    steps: int
    lr: float
    weight_decay: float = 0.01
    warmup: int = 20


@dataclass(frozen=True)
class HeadRecipe:
    """How each expert's head is built (see simokit.models.heads.HeadConfig)."""

    kind: str = "linear"
    layers: tuple[int, ...] = (-1,)
    use_cls: bool = False
    batch_norm: bool = True


@dataclass(frozen=True)
class ExpertConfig:
    """Two-stage fine-tuning (SIMO): stage 1 trains the head on a frozen encoder, stage 2 both."""

    tasks: tuple[str, ...] = ("seg", "depth", "normal")
    head: HeadRecipe = field(default_factory=HeadRecipe)
    stage1: StageConfig = field(default_factory=lambda: StageConfig(steps=120, lr=2e-3, warmup=10))
    stage2: StageConfig = field(default_factory=lambda: StageConfig(steps=240, lr=3e-4))
    batch: int = 32
    seed: int = 0


@dataclass(frozen=True)
class PipelineConfig:
    """Everything `simokit demo` and `simokit train` need to go from nothing to experts."""

    data: DataConfig = field(default_factory=DataConfig)
    base: BaseConfig = field(default_factory=BaseConfig)
    experts: ExpertConfig = field(default_factory=ExpertConfig)
    eval_batch: int = 64

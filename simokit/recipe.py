"""Recipes for the embedded benchmark: data, base pre-training, expert fine-tuning and merging.

The defaults here are the demo's recipe; `configs/demo.yaml` spells out the same values so a
user can copy and edit it, and a test keeps the two in step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar

from simokit.errors import ConfigError
from simokit.own_recipe import OwnConfig

C = TypeVar("C", bound="Choice")


class Choice(str, Enum):
    """A closed set of names a recipe accepts; members equal, hash and print as their plain string."""

    def __str__(self) -> str:
        return str(self.value)

    def __hash__(self) -> int:
        return hash(self.value)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Every valid name, in definition order."""
        return tuple(m.value for m in cls)

    @classmethod
    def parse(cls: type[C], value: object, where: str) -> C:
        """The member named `value`; ConfigError listing the valid names otherwise."""
        try:
            return cls(value)
        except ValueError:
            raise ConfigError(f"{where}={value!r} must be one of {', '.join(cls.names())}") from None


class RealignMode(Choice):
    """How a merged encoder is re-aligned to the frozen heads (see simokit.realign)."""

    HEAD = "head"  # least-squares map per task, folded into its head
    JOINT = "joint"  # one least-squares map per (block, part) shared by all tasks
    FINETUNE = "finetune"  # each head fine-tuned on cached merged features (labels)
    LORA = "lora"  # low-rank adapters in the encoder, merged back (labels)


LEAST_SQUARES = (RealignMode.HEAD, RealignMode.JOINT)


class SelectBy(Choice):
    """How a method's hyper-parameters are picked from its grid (see simokit.merge.select)."""

    EVAL = "eval"
    TAP = "tap"
    TAP_ALIGNED = "tap_aligned"


class TapMetric(Choice):
    """The feature distance TAP measures."""

    L2 = "l2"
    COSINE = "cosine"


class DeltaKind(Choice):
    """How a routed bundle stores each domain's merged task vector."""

    NONE = "none"
    LOWRANK = "lowrank"
    SPARSE = "sparse"


@dataclass(frozen=True)
class DataConfig:
    """Which procedural scenes to render: image size, split sizes, domains and seed."""

    size: int = 112
    train: int = 2048
    val: int = 256
    test: int = 256
    calib: int = 128
    domains: tuple[str, ...] = ("indoor", "outdoor")
    seed: int = 0

    def __post_init__(self) -> None:
        if self.size % 14:
            raise ConfigError(f"data.size={self.size} must be a multiple of the patch size 14")
        if min(self.train, self.val, self.test, self.calib) < 1:
            raise ConfigError("data.train, data.val, data.test and data.calib must be positive")


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
    aux_tasks: tuple[str, ...] = ()
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
    stage1: StageConfig = field(default_factory=lambda: StageConfig(steps=120, lr=5e-3, warmup=10))
    stage2: StageConfig = field(default_factory=lambda: StageConfig(steps=400, lr=5e-4))
    batch: int = 32
    seed: int = 0


@dataclass(frozen=True)
class MergeConfig:
    """Which merges to study, how to select their hyper-parameters and how to re-align them.

    Selection: "tap" (feature distance on `calib` images, no labels), "tap_aligned" (the residual
    left after the least-squares re-alignment map, no labels) or "eval" (normalised score on the
    labelled `val` split). Re-alignment variants use `realign_images` `calib` images:
    "head" / "joint" least-squares maps need no labels, "finetune" trains each head on cached
    merged features with its labels, "lora" trains rank-16 adapters in the encoder on all task
    losses and merges them back (`finetune_steps`/`finetune_lr` set both learned variants). The
    first one listed goes into the merged checkpoint. `device` ('cpu', 'cuda' or 'auto') is where
    encoders run (evaluation, TAP and re-alignment features) and AdaMerging learns; merge
    arithmetic, least-squares fits and checkpoints stay on CPU.
    `grids` replaces a method's built-in search grid: {method: [{hyper-parameter: value, ...}, ...]}.
    """

    methods: tuple[str, ...] = ("sum", "ties")
    grids: dict[str, Any] = field(default_factory=dict)
    select: str = "tap_aligned"
    realign: tuple[str, ...] = ("head", "joint")
    realign_images: int = 128
    tap_images: int = 128
    tap_metric: str = "l2"
    ridge: float = 1e-3
    finetune_steps: int = 100
    finetune_lr: float = 1e-3
    batch: int = 32
    device: str = "cpu"

    def __post_init__(self) -> None:
        SelectBy.parse(self.select, "merge.select")
        bad = [r for r in self.realign if r not in RealignMode.names()]
        if bad or not self.realign:
            raise ConfigError(
                f"merge.realign: give one or more of {', '.join(RealignMode.names())} (got {bad or 'none'})"
            )
        for method, grid in self.grids.items():
            ok = isinstance(grid, list) and all(isinstance(g, dict) for g in grid)
            if method not in self.methods or not ok:
                raise ConfigError(f"merge.grids.{method}: list of mappings for a method in merge.methods")
        TapMetric.parse(self.tap_metric, "merge.tap_metric")


@dataclass(frozen=True)
class RoutingConfig:
    """SiM: experts per domain, one merged engine per domain, a router picking per input.

    Empty `domains` (the default) means no routing. Otherwise each domain's experts are fine-tuned
    from the shared base on that domain's scenes, merged with `method`/`hparams`, re-aligned, and a
    router built from `support` images per domain picks the engine for each frame. `block` = -1
    picks the earliest (cheapest) encoder block whose routing accuracy on the validation split is
    within two points of the best; `margin` is the video hysteresis (relative residual improvement to switch).
    `delta` 'lowrank' (`delta_rank`) or 'sparse' (`delta_density`) compresses each domain's merged
    task vector before re-alignment, and the bundle stores one base plus those per-domain deltas;
    'none' stores every domain's engine in full (see simokit.routing.compress).
    """

    domains: tuple[str, ...] = ()
    method: str = "ties"
    hparams: dict[str, Any] = field(default_factory=lambda: {"k": 0.3, "alpha": 1.0})
    realign: str = "head"
    support: int = 32
    mode: str = "grid"
    energy: float = 0.99
    max_rank: int = 16
    block: int = -1
    margin: float = 0.1
    delta: str = "none"
    delta_rank: int = 16
    delta_density: float = 0.1

    def __post_init__(self) -> None:
        if self.domains and len(self.domains) < 2:
            raise ConfigError(f"routing.domains needs two or more domains, got {self.domains}")
        if self.realign not in LEAST_SQUARES:
            names = ", ".join(m.value for m in LEAST_SQUARES)
            raise ConfigError(f"routing.realign={self.realign!r} must be one of {names}")
        if self.support < 2:
            raise ConfigError(f"routing.support={self.support} must be at least 2 images per domain")
        DeltaKind.parse(self.delta, "routing.delta")
        if self.delta_rank < 1 or not 0.0 < self.delta_density <= 1.0:
            raise ConfigError(
                f"routing.delta_rank={self.delta_rank} must be >= 1 and "
                f"routing.delta_density={self.delta_density} in (0, 1]"
            )


@dataclass(frozen=True)
class PipelineConfig:
    """Everything `simokit demo` and `simokit train` need to go from nothing to experts."""

    data: DataConfig = field(default_factory=DataConfig)
    base: BaseConfig = field(default_factory=BaseConfig)
    experts: ExpertConfig = field(default_factory=ExpertConfig)
    merge: MergeConfig = field(default_factory=MergeConfig)
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    own: OwnConfig = field(default_factory=OwnConfig)
    eval_batch: int = 64

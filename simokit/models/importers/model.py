"""ImportedModel: one encoder (official DINOv2 key layout) and at most one task head, as read from a file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from simokit.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from simokit.models.heads import HeadConfig
from simokit.models.vit import VitConfig


@dataclass
class ImportedModel:
    """An encoder with its architecture and, for an expert, its task and head; `details` is what
    `simokit inspect` prints about the source (format, variant, registers, blocks read, activation).

    `base_hash` is the state hash of the base the encoder was fine-tuned from when the format records
    it (a frozen-encoder head imported with its own backbone has its encoder as base), else "".
    """

    format: str
    vit: VitConfig
    encoder: dict[str, Tensor]
    task: str | None = None
    head: HeadConfig | None = None
    head_state: dict[str, Tensor] = field(default_factory=dict)
    classes: tuple[str, ...] = ()
    input_size: tuple[int, int] = (518, 518)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    base_hash: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def is_expert(self) -> bool:
        """True when the model carries a task head (else it is a base encoder)."""
        return self.head is not None

"""HeadConfig: what a head predicts, how it activates and which encoder blocks it reads."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from simokit.config import from_dict as config_from_dict
from simokit.errors import ConfigError
from simokit.models.heads.activation import ACTIVATIONS

HEAD_KINDS = ("linear", "dpt", "linear_depth", "da_dpt", "dinov2_dpt")
DPT_NUM_LAYERS = 4


@dataclass(frozen=True)
class HeadConfig:
    """What a head predicts and which encoder features it reads (block indices may be negative).

    `norm` says whether the head reads block outputs after the encoder's final LayerNorm (simokit's
    heads and Depth Anything do; the official DINOv2 depth heads do not). `options` holds settings only
    one head kind has (depth bins, a metric depth range, per-branch widths); that kind checks them.
    """

    kind: str
    out_channels: int
    activation: str = "none"
    layers: tuple[int, ...] = (-1,)
    use_cls: bool = False
    batch_norm: bool = False
    dpt_features: int = 64
    norm: bool = True
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Validate fields; lists from JSON become tuples."""
        object.__setattr__(self, "layers", tuple(int(i) for i in self.layers))
        if self.kind not in HEAD_KINDS:
            raise ConfigError(f"HeadConfig.kind is '{self.kind}'; choose from {', '.join(HEAD_KINDS)}")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(
                f"HeadConfig.activation is '{self.activation}'; choose from {', '.join(ACTIVATIONS)}"
            )
        if self.out_channels <= 0:
            raise ConfigError(f"HeadConfig.out_channels must be positive, got {self.out_channels}")
        if not self.layers:
            raise ConfigError("HeadConfig.layers is empty; give at least one encoder block index, e.g. (-1,)")
        if self.kind == "dpt" and len(self.layers) != DPT_NUM_LAYERS:
            raise ConfigError(
                f"a dpt head reads {DPT_NUM_LAYERS} encoder blocks but layers is {self.layers}; "
                "use e.g. (2, 5, 8, 11) for a 12-block encoder"
            )
        if self.dpt_features < 2:
            raise ConfigError(f"HeadConfig.dpt_features must be at least 2, got {self.dpt_features}")

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict of all fields."""
        data = dataclasses.asdict(self)
        data["layers"] = list(self.layers)
        data["options"] = dict(self.options)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HeadConfig:
        """Build a config from `to_dict()` output; unknown, missing or mistyped keys raise ConfigError."""
        return config_from_dict(cls, data, where="HeadConfig")

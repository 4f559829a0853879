"""VitConfig: the architecture of a DINOv2 ViT, validated, with a JSON round trip."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from simokit.config import from_dict as config_from_dict
from simokit.errors import ConfigError
from simokit.models.layers import FFN_KINDS

# Official configs name the fused SwiGLU "swiglufused"; both spellings build the same module.
_FFN_ALIASES = {"swiglufused": "swiglu"}


@dataclass(frozen=True, kw_only=True)
class VitConfig:
    """Architecture of a DINOv2 ViT; `img_size` only fixes the size of the stored position embedding."""

    img_size: int = 518
    patch_size: int = 14
    in_chans: int = 3
    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    proj_bias: bool = True
    ffn_bias: bool = True
    ffn: str = "mlp"
    init_values: float | None = 1e-5
    num_register_tokens: int = 0
    interpolate_antialias: bool = False
    interpolate_offset: float = 0.1
    layer_norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        """Validate field values; raise ConfigError naming the bad field."""
        ffn = _FFN_ALIASES.get(self.ffn, self.ffn)
        if ffn not in FFN_KINDS:
            raise ConfigError(f"VitConfig.ffn is '{self.ffn}'; choose from {', '.join(FFN_KINDS)}")
        object.__setattr__(self, "ffn", ffn)
        for name in ("img_size", "patch_size", "in_chans", "embed_dim", "depth", "num_heads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"VitConfig.{name} must be a positive integer, got {value!r}")
        if self.embed_dim % self.num_heads != 0:
            raise ConfigError(
                f"VitConfig.embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}; "
                "pick a head count that divides it"
            )
        if self.img_size % self.patch_size != 0:
            raise ConfigError(
                f"VitConfig.img_size {self.img_size} is not a multiple of patch_size {self.patch_size}; "
                f"use {self.img_size // self.patch_size * self.patch_size or self.patch_size}"
            )
        if self.num_register_tokens < 0:
            raise ConfigError(f"VitConfig.num_register_tokens must be >= 0, got {self.num_register_tokens}")
        if self.mlp_ratio <= 0:
            raise ConfigError(f"VitConfig.mlp_ratio must be positive, got {self.mlp_ratio}")

    @property
    def grid_size(self) -> int:
        """Patches per side of the stored position embedding."""
        return self.img_size // self.patch_size

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict of all fields."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VitConfig:
        """Build a config from `to_dict()` output; unknown, missing or mistyped keys raise ConfigError."""
        return config_from_dict(cls, data, where="VitConfig")

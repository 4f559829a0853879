"""The head kinds: each HeadConfig.kind names the DenseHead class that build_head makes for it."""

from __future__ import annotations

from simokit.errors import ConfigError
from simokit.models.heads.base import DenseHead
from simokit.models.heads.config import HeadConfig
from simokit.models.heads.da_dpt import DepthAnythingHead
from simokit.models.heads.dinov2_dpt import Dinov2DPTHead
from simokit.models.heads.dpt import DPTHead
from simokit.models.heads.linear import LinearHead
from simokit.models.heads.linear_depth import LinearDepthHead

# Keep in step with HEAD_KINDS, which HeadConfig checks before any head module is imported.
HEADS: dict[str, type[DenseHead]] = {
    "linear": LinearHead,
    "dpt": DPTHead,
    "linear_depth": LinearDepthHead,
    "da_dpt": DepthAnythingHead,
    "dinov2_dpt": Dinov2DPTHead,
}


def build_head(cfg: HeadConfig, embed_dim: int) -> DenseHead:
    """Build the head `cfg.kind` for an encoder of width `embed_dim`."""
    if embed_dim <= 0:
        raise ConfigError(f"embed_dim must be positive, got {embed_dim}")
    if cfg.kind not in HEADS:
        raise ConfigError(f"unknown head kind '{cfg.kind}'; choose from {', '.join(HEADS)}")
    return HEADS[cfg.kind](cfg, embed_dim)

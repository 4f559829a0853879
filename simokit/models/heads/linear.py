"""LinearHead: DINOv2 linear-evaluation style [BatchNorm] + 1x1 conv over concatenated block features."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from simokit.models.heads.activation import apply_activation
from simokit.models.heads.base import DenseHead, Features
from simokit.models.heads.config import HeadConfig
from simokit.models.heads.fold import FeatureConsumer


class LinearHead(DenseHead):
    """DINOv2 linear-evaluation style head: [BatchNorm] + 1x1 conv on concatenated features, upsampled."""

    def __init__(self, cfg: HeadConfig, embed_dim: int) -> None:
        super().__init__(cfg, embed_dim)
        in_channels = embed_dim * (2 if cfg.use_cls else 1) * len(cfg.layers)
        self.bn: nn.Module = nn.BatchNorm2d(in_channels) if cfg.batch_norm else nn.Identity()
        self.conv = nn.Conv2d(in_channels, cfg.out_channels, kernel_size=1)

    def output_layer(self) -> nn.Conv2d:
        """The 1x1 conv (it is both the first and the last layer)."""
        return self.conv

    def consumers(self) -> list[FeatureConsumer]:
        """One consumer per (layer, part), all feeding the single 1x1 conv."""
        norm = self.bn if isinstance(self.bn, nn.BatchNorm2d) else None
        return self._cat_consumers(self.conv, norm)

    def forward(self, feats: Features, out_size: tuple[int, int]) -> Tensor:
        """Predict per pixel: per layer ((B, C, h, w), (B, C)) -> (B, K, H, W) with (H, W) = out_size."""
        x = torch.cat(self._layer_inputs(feats), dim=1)
        x = self.conv(self.bn(x))
        x = F.interpolate(x, size=out_size, mode="bilinear", align_corners=False)
        return apply_activation(x, self.cfg.activation)

"""Pre-norm transformer block with LayerScale on both residual branches."""

from __future__ import annotations

from torch import Tensor, nn

from simokit.models.layers.attention import Attention
from simokit.models.layers.layer_scale import LayerScale
from simokit.models.layers.mlp import Mlp, SwiGLUFFN

FFN_KINDS = ("mlp", "swiglu")


class Block(nn.Module):
    """x + ls1(attn(norm1(x))), then + ls2(mlp(norm2(x))): (B, N, D) -> (B, N, D)."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        ffn_bias: bool = True,
        ffn: str = "mlp",
        init_values: float | None = None,
        layer_norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=layer_norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, proj_bias=proj_bias)
        self.ls1: nn.Module = LayerScale(dim, init_values) if init_values is not None else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=layer_norm_eps)
        self.mlp: nn.Module
        if ffn == "mlp":
            self.mlp = Mlp(dim, hidden, dim, bias=ffn_bias)
        else:
            self.mlp = SwiGLUFFN(dim, hidden, dim, bias=ffn_bias)
        self.ls2: nn.Module = LayerScale(dim, init_values) if init_values is not None else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """Run attention then feed-forward, each as a scaled residual: (B, N, D) -> (B, N, D)."""
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))

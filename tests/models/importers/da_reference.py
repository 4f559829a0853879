"""Depth Anything written from its source's formulas, for the importer tests: random official-layout head
weights and the head's forward in plain functional torch (eval-mode BatchNorm)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

Head = dict[str, Tensor]


def official_head_state(
    dim: int, widths: list[int], features: int, use_bn: bool, use_cls: bool, seed: int = 0
) -> Head:
    """Random `depth_head.*` tensors (prefix removed) with the official module names and shapes."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape: int, scale: float = 0.2) -> Tensor:
        return scale * torch.randn(*shape, generator=g)

    sd: Head = {}
    for i, w in enumerate(widths):
        sd[f"projects.{i}.weight"], sd[f"projects.{i}.bias"] = r(w, dim, 1, 1), r(w)
        if use_cls:
            sd[f"readout_projects.{i}.0.weight"], sd[f"readout_projects.{i}.0.bias"] = r(dim, 2 * dim), r(dim)
        sd[f"scratch.layer{i + 1}_rn.weight"] = r(features, w, 3, 3, scale=0.1)
    for i, k in ((0, 4), (1, 2)):
        sd[f"resize_layers.{i}.weight"], sd[f"resize_layers.{i}.bias"] = (
            r(widths[i], widths[i], k, k),
            r(widths[i]),
        )
    sd["resize_layers.3.weight"], sd["resize_layers.3.bias"] = (
        r(widths[3], widths[3], 3, 3, scale=0.1),
        r(widths[3]),
    )
    for n in range(1, 5):
        pre = f"scratch.refinenet{n}"
        sd[f"{pre}.out_conv.weight"], sd[f"{pre}.out_conv.bias"] = r(features, features, 1, 1), r(features)
        for unit in ("resConfUnit1", "resConfUnit2"):
            for c in ("1", "2"):
                sd[f"{pre}.{unit}.conv{c}.weight"] = r(features, features, 3, 3, scale=0.05)
                sd[f"{pre}.{unit}.conv{c}.bias"] = r(features)
                if use_bn:
                    sd[f"{pre}.{unit}.bn{c}.weight"] = 1 + r(features)
                    sd[f"{pre}.{unit}.bn{c}.bias"] = r(features)
                    sd[f"{pre}.{unit}.bn{c}.running_mean"] = r(features)
                    sd[f"{pre}.{unit}.bn{c}.running_var"] = 0.5 + torch.rand(features, generator=g)
                    sd[f"{pre}.{unit}.bn{c}.num_batches_tracked"] = torch.tensor(7)
    half = features // 2
    sd["scratch.output_conv1.weight"], sd["scratch.output_conv1.bias"] = r(half, features, 3, 3), r(half)
    sd["scratch.output_conv2.0.weight"], sd["scratch.output_conv2.0.bias"] = r(32, half, 3, 3), r(32)
    sd["scratch.output_conv2.2.weight"], sd["scratch.output_conv2.2.bias"] = r(1, 32, 1, 1), 0.5 + r(1)
    return sd


def _unit(sd: Head, pre: str, x: Tensor) -> Tensor:
    """Pre-activation residual unit: relu, conv, [bn], relu, conv, [bn], plus the input."""
    out = x
    for c in ("1", "2"):
        out = F.conv2d(F.relu(out), sd[f"{pre}.conv{c}.weight"], sd[f"{pre}.conv{c}.bias"], padding=1)
        if f"{pre}.bn{c}.weight" in sd:
            b = f"{pre}.bn{c}"
            out = F.batch_norm(
                out,
                sd[f"{b}.running_mean"],
                sd[f"{b}.running_var"],
                sd[f"{b}.weight"],
                sd[f"{b}.bias"],
                False,
            )
    return out + x


def _fuse(sd: Head, n: int, x: Tensor, skip: Tensor | None, size: tuple[int, int] | None) -> Tensor:
    pre = f"scratch.refinenet{n}"
    if skip is not None:
        x = x + _unit(sd, f"{pre}.resConfUnit1", skip)
    x = _unit(sd, f"{pre}.resConfUnit2", x)
    if size is None:
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
    else:
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
    return F.conv2d(x, sd[f"{pre}.out_conv.weight"], sd[f"{pre}.out_conv.bias"])


def reference_depth(
    sd: Head,
    feats: list[tuple[Tensor, Tensor]],
    image_hw: tuple[int, int],
    version: str,
    max_depth: float | None,
) -> Tensor:
    """The source model's output (B, H', W') from per-block (tokens (B, N, C), cls (B, C)) features.

    `max_depth` None: relative (ReLU); else metric (sigmoid times max_depth, V2's metric model).
    """
    h, w = image_hw
    ph, pw = h // 14, w // 14
    maps = []
    for i, (tokens, cls) in enumerate(feats):
        x = tokens
        if f"readout_projects.{i}.0.weight" in sd:
            both = torch.cat((x, cls[:, None].expand_as(x)), dim=-1)
            x = F.gelu(
                F.linear(both, sd[f"readout_projects.{i}.0.weight"], sd[f"readout_projects.{i}.0.bias"])
            )
        x = x.permute(0, 2, 1).reshape(x.shape[0], x.shape[-1], ph, pw)
        x = F.conv2d(x, sd[f"projects.{i}.weight"], sd[f"projects.{i}.bias"])
        if i < 2:
            x = F.conv_transpose2d(
                x, sd[f"resize_layers.{i}.weight"], sd[f"resize_layers.{i}.bias"], stride=4 // (i + 1)
            )
        elif i == 3:
            x = F.conv2d(x, sd["resize_layers.3.weight"], sd["resize_layers.3.bias"], stride=2, padding=1)
        maps.append(F.conv2d(x, sd[f"scratch.layer{i + 1}_rn.weight"], padding=1))
    path = _fuse(sd, 4, maps[3], None, maps[2].shape[2:])
    path = _fuse(sd, 3, path, maps[2], maps[1].shape[2:])
    path = _fuse(sd, 2, path, maps[1], maps[0].shape[2:])
    path = _fuse(sd, 1, path, maps[0], None)
    out = F.conv2d(path, sd["scratch.output_conv1.weight"], sd["scratch.output_conv1.bias"], padding=1)
    out = F.interpolate(out, (ph * 14, pw * 14), mode="bilinear", align_corners=True)
    out = F.relu(
        F.conv2d(out, sd["scratch.output_conv2.0.weight"], sd["scratch.output_conv2.0.bias"], padding=1)
    )
    out = F.conv2d(out, sd["scratch.output_conv2.2.weight"], sd["scratch.output_conv2.2.bias"])
    if max_depth is not None:
        return (torch.sigmoid(out) * max_depth)[:, 0]
    out = F.relu(out)
    if version == "v1":
        out = F.relu(F.interpolate(out, size=(h, w), mode="bilinear", align_corners=True))
    return out[:, 0]


def save_hf_depth_anything(
    path: Path, kind: str, max_depth: int = 1, heads: int = 2, stages: tuple[int, ...] = (2, 3, 5, 6)
) -> torch.nn.Module:
    """A random tiny DepthAnythingForDepthEstimation saved at `path`; returns the model in eval mode."""
    import transformers

    torch.manual_seed(0)
    backbone = transformers.Dinov2Config(
        hidden_size=64, num_hidden_layers=6, num_attention_heads=heads, intermediate_size=128,
        image_size=42, patch_size=14, out_indices=list(stages), apply_layernorm=True,
        reshape_hidden_states=False,
    )  # fmt: skip
    config = transformers.DepthAnythingConfig(
        backbone_config=backbone, reassemble_hidden_size=64, patch_size=14, fusion_hidden_size=16,
        neck_hidden_sizes=[8, 16, 32, 32], head_hidden_size=8, depth_estimation_type=kind,
        max_depth=max_depth,
    )  # fmt: skip
    model = transformers.DepthAnythingForDepthEstimation(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
        model.head.conv3.bias.fill_(0.5)
    model.save_pretrained(path)
    return model

"""Reference DPT heads in DINOv2's (and SIMO's) mmcv-style key layout, written from their formulas.

Readout "project": per block GELU(Linear(2C -> C)) over [patch token, CLS]; "add": CLS added to every
patch token; then a 1x1 projection and resampling (transposed conv x4, x2, identity, 3x3 stride-2
conv), a bias-free 3x3 conv to the fusion width, fusion from the deepest block with pre-activation
residual units (bias-free convs) whose skip input is bilinearly resized (align_corners=False) to the
path when sizes differ, a 2x bilinear upsampling (align_corners=True) and a 1x1 conv per stage, a 3x3
conv + ReLU, then the output stack: depth (3x3 conv, 2x upsampling, 3x3 conv, ReLU, 1x1 conv, then
relu + min_depth) or seg/normal (bias-free 3x3 conv, BatchNorm, ReLU, 1x1 conv).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from simokit.models import DinoVisionTransformer, VitConfig, build_head
from simokit.models.importers.model import ImportedModel


def _randn(*shape: int, scale: float = 1.0) -> Tensor:
    fan_in = max(1, int(torch.tensor(shape[1:]).prod().item())) if len(shape) > 1 else 1
    return torch.randn(*shape) * scale / fan_in**0.5


def mmcv_dpt_state(
    dim: int, post: list[int], width: int, readout: str, output: str, classes: int = 1, prefix: str = ""
) -> dict[str, Tensor]:
    """Random weights with the exact key names of DINOv2's DPTHead (decode_head) and SIMO's decoders."""
    sd: dict[str, Tensor] = {}
    p = prefix
    for i, c in enumerate(post):
        if readout == "project":
            sd[f"{p}reassemble_blocks.readout_projects.{i}.0.weight"] = _randn(dim, 2 * dim)
            sd[f"{p}reassemble_blocks.readout_projects.{i}.0.bias"] = 0.1 * torch.randn(dim)
        sd[f"{p}reassemble_blocks.projects.{i}.conv.weight"] = _randn(c, dim, 1, 1)
        sd[f"{p}reassemble_blocks.projects.{i}.conv.bias"] = 0.1 * torch.randn(c)
        if i in (0, 1):
            k = 4 if i == 0 else 2
            sd[f"{p}reassemble_blocks.resize_layers.{i}.weight"] = _randn(c, c, k, k)
            sd[f"{p}reassemble_blocks.resize_layers.{i}.bias"] = 0.1 * torch.randn(c)
        elif i == 3:
            sd[f"{p}reassemble_blocks.resize_layers.{i}.weight"] = _randn(c, c, 3, 3)
            sd[f"{p}reassemble_blocks.resize_layers.{i}.bias"] = 0.1 * torch.randn(c)
        sd[f"{p}convs.{i}.conv.weight"] = _randn(width, c, 3, 3)
    for i in range(4):
        sd[f"{p}fusion_blocks.{i}.project.conv.weight"] = _randn(width, width, 1, 1)
        sd[f"{p}fusion_blocks.{i}.project.conv.bias"] = 0.1 * torch.randn(width)
        for unit in (1, 2) if i > 0 else (2,):
            for conv in (1, 2):
                key = f"{p}fusion_blocks.{i}.res_conv_unit{unit}.conv{conv}.conv.weight"
                sd[key] = _randn(width, width, 3, 3)
    sd[f"{p}project.conv.weight"] = _randn(width, width, 3, 3)
    sd[f"{p}project.conv.bias"] = 0.1 * torch.randn(width)
    if output == "depth":
        h = f"{p}conv_depth.head."
        sd[h + "0.weight"] = _randn(width // 2, width, 3, 3)
        sd[h + "0.bias"] = 0.1 * torch.randn(width // 2)
        sd.update({h + "2.weight": _randn(32, width // 2, 3, 3), h + "2.bias": 0.1 * torch.randn(32)})
        # a positive bias keeps most of the final ReLU open, so the depth map varies
        sd.update({h + "4.weight": _randn(1, 32, 1, 1), h + "4.bias": torch.tensor([1.5])})
    else:
        h = f"{p}conv_{output}.head."
        sd[h + "0.weight"] = _randn(width, width, 3, 3)
        sd[h + "1.weight"] = 1 + 0.2 * torch.randn(width)
        sd[h + "1.bias"] = 0.2 * torch.randn(width)
        sd[h + "1.running_mean"] = 0.2 * torch.randn(width)
        sd[h + "1.running_var"] = 0.5 + torch.rand(width)
        sd[h + "1.num_batches_tracked"] = torch.tensor(7)
        sd[h + "4.weight"] = _randn(classes, width, 1, 1)
        sd[h + "4.bias"] = 0.1 * torch.randn(classes)
    return sd


def _unit(sd: dict[str, Tensor], key: str, x: Tensor) -> Tensor:
    y = F.conv2d(F.relu(x), sd[f"{key}.conv1.conv.weight"], padding=1)
    y = F.conv2d(F.relu(y), sd[f"{key}.conv2.conv.weight"], padding=1)
    return y + x


def _fusion(sd: dict[str, Tensor], i: int, x: Tensor, skip: Tensor | None) -> Tensor:
    key = f"fusion_blocks.{i}"
    if skip is not None:
        if skip.shape != x.shape:
            skip = F.interpolate(skip, size=x.shape[2:], mode="bilinear", align_corners=False)
        x = x + _unit(sd, f"{key}.res_conv_unit1", skip)
    x = _unit(sd, f"{key}.res_conv_unit2", x)
    x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
    return F.conv2d(x, sd[f"{key}.project.conv.weight"], sd[f"{key}.project.conv.bias"])


def _reassemble(sd: dict[str, Tensor], i: int, x: Tensor, cls: Tensor, readout: str) -> Tensor:
    shape = x.shape
    key = "reassemble_blocks"
    if readout == "project":
        tokens = x.flatten(2).permute(0, 2, 1)
        both = torch.cat((tokens, cls.unsqueeze(1).expand_as(tokens)), -1)
        w, b = sd[f"{key}.readout_projects.{i}.0.weight"], sd[f"{key}.readout_projects.{i}.0.bias"]
        x = F.gelu(F.linear(both, w, b)).permute(0, 2, 1).reshape(shape)
    elif readout == "add":
        x = (x.flatten(2) + cls.unsqueeze(-1)).reshape(shape)
    x = F.conv2d(x, sd[f"{key}.projects.{i}.conv.weight"], sd[f"{key}.projects.{i}.conv.bias"])
    w, b = sd.get(f"{key}.resize_layers.{i}.weight"), sd.get(f"{key}.resize_layers.{i}.bias")
    if i in (0, 1):
        x = F.conv_transpose2d(x, w, b, stride=4 if i == 0 else 2)
    elif i == 3:
        x = F.conv2d(x, w, b, stride=2, padding=1)
    return F.conv2d(x, sd[f"convs.{i}.conv.weight"], padding=1)


def reference_dpt(
    sd: dict[str, Tensor],
    feats: list[tuple[Tensor, Tensor]],
    readout: str,
    output: str,
    image_size: tuple[int, int],
    min_depth: float = 0.0,
    max_depth: float | None = None,
) -> Tensor:
    """The source head's prediction for `feats`, resized bilinearly to `image_size` as the source does."""
    maps = [_reassemble(sd, i, x, cls, readout) for i, (x, cls) in enumerate(feats)]
    out = _fusion(sd, 0, maps[-1], None)
    for i in range(1, 4):
        out = _fusion(sd, i, out, maps[-(i + 1)])
    out = F.relu(F.conv2d(out, sd["project.conv.weight"], sd["project.conv.bias"], padding=1))
    if output == "depth":
        h = "conv_depth.head."
        out = F.conv2d(out, sd[h + "0.weight"], sd[h + "0.bias"], padding=1)
        out = F.interpolate(out, scale_factor=2, mode="bilinear", align_corners=True)
        out = F.relu(F.conv2d(out, sd[h + "2.weight"], sd[h + "2.bias"], padding=1))
        out = F.relu(F.conv2d(out, sd[h + "4.weight"], sd[h + "4.bias"])) + min_depth
        if max_depth is not None:
            out = torch.clamp(out, min=min_depth, max=max_depth)
    else:
        h = f"conv_{output}.head."
        out = F.conv2d(out, sd[h + "0.weight"], padding=1)
        out = F.batch_norm(out, sd[h + "1.running_mean"], sd[h + "1.running_var"], sd[h + "1.weight"],
                           sd[h + "1.bias"], training=False, eps=1e-5)  # fmt: skip
        out = F.conv2d(F.relu(out), sd[h + "4.weight"], sd[h + "4.bias"])
    return F.interpolate(out, size=image_size, mode="bilinear", align_corners=False)


def random_encoder(dim: int, depth: int, seed: int = 0) -> DinoVisionTransformer:
    """A small official-layout ViT/14 with perturbed weights (one head per 64 channels, as inferred)."""
    torch.manual_seed(seed)
    cfg = VitConfig(embed_dim=dim, depth=depth, num_heads=max(dim // 64, 1), img_size=56, init_values=1.0)
    enc = DinoVisionTransformer(cfg).eval()
    with torch.no_grad():
        for name, p in enc.named_parameters():
            p.add_(0.05 * torch.randn_like(p))
            if name.endswith("gamma"):
                p.uniform_(0.3, 1.2)
    return enc


def run_imported(model: ImportedModel, x: Tensor, out_size: tuple[int, int] | None = None) -> Tensor:
    """The imported encoder (strictly loaded) + head on images x, predicting at out_size (default: x's)."""
    assert model.head is not None
    enc = DinoVisionTransformer(model.vit).eval()
    enc.load_state_dict(model.encoder, strict=True)
    head = build_head(model.head, model.vit.embed_dim).eval()
    head.load_state_dict(model.head_state, strict=True)
    with torch.no_grad():
        feats = enc.get_intermediate_layers(
            x, n=list(model.head.layers), reshape=True, return_class_token=True, norm=model.head.norm
        )
        return head(list(feats), out_size or (x.shape[-2], x.shape[-1]))


def source_features(enc: DinoVisionTransformer, x: torch.Tensor, layers: list[int]) -> list:
    """What the official depthers feed their head: (patch map, CLS) per block, before the final norm."""
    return list(enc.get_intermediate_layers(x, n=layers, reshape=True, return_class_token=True, norm=False))


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest absolute difference relative to the reference's largest magnitude."""
    return ((a - b).abs().max() / b.abs().max()).item()


VARIANTS = {
    # readout project, defaults otherwise (biased residual convs, no projection)
    "project": dict(readout_type="project", neck_hidden_sizes=[8, 16, 32, 48], fusion_hidden_size=32),
    # readout add, BatchNorm in the fusion residuals, the 3x3 projection (HF builds it 256 wide)
    "add_bn_projection": dict(readout_type="add", neck_hidden_sizes=[8, 16, 32, 48], fusion_hidden_size=256,
                              use_batch_norm_in_fusion_residual=True, add_projection=True),
    # CLS ignored, no final LayerNorm on the backbone's outputs
    "ignore_no_layernorm": dict(readout_type="ignore", neck_hidden_sizes=[8, 16, 32, 48],
                                fusion_hidden_size=16),
}  # fmt: skip


def hf_dpt_model(variant: str = "project", seed: int = 0) -> Any:
    """A random tiny transformers DPTForDepthEstimation on a 48-wide DINOv2, in eval mode."""
    import transformers

    torch.manual_seed(seed)
    backbone = dict(model_type="dinov2", hidden_size=48, num_hidden_layers=4, num_attention_heads=1,
                    patch_size=14, image_size=56, out_indices=[1, 2, 3, 4], reshape_hidden_states=False,
                    apply_layernorm=variant != "ignore_no_layernorm", layerscale_value=0.5)  # fmt: skip
    model = transformers.DPTForDepthEstimation(
        transformers.DPTConfig(backbone_config=backbone, **VARIANTS[variant])
    )
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("backbone.") or p.dim() == 1:
                p.add_(0.05 * torch.randn_like(p))
            else:  # unit-gain weights, so the prediction varies across the image
                p.normal_(0.0, p[0].numel() ** -0.5)
            if name.endswith("head.head.4.bias"):
                p.fill_(1.0)  # keeps the final ReLU mostly open, so the depth map varies
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.normal_(0, 0.2)
            elif name.endswith("running_var"):
                b.uniform_(0.5, 1.5)
    return model.eval()

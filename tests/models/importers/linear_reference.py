"""Reference forwards of the DINOv2 linear head family, written from the source formulas, and helpers.

The source backbone is stood in for by a simokit encoder with the same official-layout weights (the
encoder import is tested elsewhere); the heads below follow the sources step by step: concatenate
[patch, CLS] per block, resize every block to the first block's size times `upsample` (bilinear,
corners not aligned), then BatchNorm + 1x1 conv (seg, normals) or 1x1 conv + bins / ReLU (depth),
and finally resize to the image (bilinear, corners not aligned).
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from simokit.models import build_head, fold_linear_map
from simokit.models.checkpoint import load_checkpoint, model_from_checkpoint
from simokit.models.importers import ImportedModel, save_imported
from simokit.models.vit import DinoVisionTransformer, VitConfig, build_encoder

DIM = 64
SIZES = ((56, 56), (70, 84))


def tiny_backbone(depth: int = 12, seed: int = 0) -> DinoVisionTransformer:
    """A random 64-wide ViT (one 64-wide attention head, as the importers infer) at 56 px."""
    torch.manual_seed(seed)
    encoder = build_encoder(VitConfig(embed_dim=DIM, depth=depth, num_heads=1, img_size=56, init_values=1.0))
    with torch.no_grad():
        for name, p in encoder.named_parameters():
            if name.endswith("gamma"):
                p.uniform_(0.5, 1.5)  # non-trivial layer scales, so every block matters
    return encoder.eval()


def source_features(
    encoder: DinoVisionTransformer, x: Tensor, blocks: list[int], norm: bool
) -> list[tuple[Tensor, Tensor]]:
    """What the source backbone hands its heads: per block, in block order, (patch map, CLS)."""
    with torch.no_grad():
        out = encoder.get_intermediate_layers(
            x, n=sorted(blocks), reshape=True, return_class_token=True, norm=norm
        )
    return [(p, c) for p, c in out]


def _concat(feats: list[tuple[Tensor, Tensor]], use_cls: bool, upsample: int) -> Tensor:
    parts = []
    for patch, cls in feats:
        parts.append(torch.cat((patch, cls[:, :, None, None].expand_as(patch)), 1) if use_cls else patch)
    size = [s * upsample for s in parts[0].shape[2:]]
    return torch.cat([F.interpolate(p, size=size, mode="bilinear", align_corners=False) for p in parts], 1)


def _conv1x1(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    return torch.einsum("bchw,oc->bohw", x, weight[:, :, 0, 0]) + bias[None, :, None, None]


def bn_conv_reference(
    feats: list[tuple[Tensor, Tensor]],
    state: dict[str, Tensor],
    conv: str,
    use_cls: bool,
    size: tuple[int, int],
) -> Tensor:
    """BatchNorm (eval, eps 1e-5) + 1x1 conv at the patch grid, resized to the image."""
    x = _concat(feats, use_cls, 1)
    shape = (1, -1, 1, 1)
    x = (x - state["bn.running_mean"].view(shape)) / torch.sqrt(state["bn.running_var"].view(shape) + 1e-5)
    x = x * state["bn.weight"].view(shape) + state["bn.bias"].view(shape)
    out = _conv1x1(x, state[f"{conv}.weight"], state[f"{conv}.bias"])
    return F.interpolate(out, size=size, mode="bilinear", align_corners=False)


def depth_reference(
    feats: list[tuple[Tensor, Tensor]],
    state: dict[str, Tensor],
    use_cls: bool,
    depth_range: tuple[float, float],
    clamp: bool,
    size: tuple[int, int],
) -> Tensor:
    """Upsample 4x, 1x1 conv, then bins (ReLU + 0.1, normalised, expectation over linspace) or ReLU + min."""
    x = _concat(feats, use_cls, 4)
    logits = _conv1x1(x, state["conv_depth.weight"], state["conv_depth.bias"])
    low, high = depth_range
    if logits.shape[1] > 1:
        prob = torch.relu(logits) + 0.1
        prob = prob / prob.sum(dim=1, keepdim=True)
        bins = torch.linspace(low, high, logits.shape[1])
        depth = torch.einsum("ikmn,k->imn", prob, bins)[:, None]
    else:
        depth = torch.relu(logits) + low
    if clamp:
        depth = torch.clamp(depth, min=low, max=high)
    return F.interpolate(depth, size=size, mode="bilinear", align_corners=False)


def run_saved(model: ImportedModel, path: Path, x: Tensor) -> Tensor:
    """The imported expert written as a simokit checkpoint, read back and run as simokit runs models."""
    ck = load_checkpoint(save_imported(model, path))
    net = model_from_checkpoint(ck)
    (task, head), *_ = net.heads.items()
    assert task == model.task and head.cfg == model.head  # type: ignore[union-attr]
    with torch.no_grad():
        return net(x)[task]


def random_bn(channels: int, g: torch.Generator) -> dict[str, Tensor]:
    """BatchNorm state with trained-looking statistics."""
    return {
        "bn.weight": torch.rand(channels, generator=g) + 0.5,
        "bn.bias": torch.randn(channels, generator=g) * 0.3,
        "bn.running_mean": torch.randn(channels, generator=g) * 0.5,
        "bn.running_var": torch.rand(channels, generator=g) * 1.5 + 0.5,
        "bn.num_batches_tracked": torch.tensor(100),
    }


def random_conv(
    name: str, out: int, channels: int, g: torch.Generator, scale: float = 0.05
) -> dict[str, Tensor]:
    """A 1x1 conv state under `name`."""
    return {
        f"{name}.weight": torch.randn(out, channels, 1, 1, generator=g) * scale,
        f"{name}.bias": torch.randn(out, generator=g) * scale,
    }


def assert_fold_exact(model: ImportedModel, seed: int = 0) -> None:
    """Folding a random affine map into every consumer equals feeding the head the mapped features."""
    assert model.head is not None
    g = torch.Generator().manual_seed(seed)
    head = build_head(model.head, DIM).double().eval()
    head.load_state_dict(model.head_state, strict=True)
    folded = copy.deepcopy(head)
    feats = [
        (
            torch.randn(2, DIM, 4, 5, generator=g, dtype=torch.float64),
            torch.randn(2, DIM, generator=g, dtype=torch.float64),
        )
        for _ in model.head.layers
    ]
    mapped = [list(pair) for pair in feats]
    index = {layer: i for i, layer in enumerate(model.head.layers)}
    consumers = folded.consumers()
    assert {(c.layer, c.part) for c in consumers} == {
        (layer, part)
        for layer in model.head.layers
        for part in (("patch", "cls") if model.head.use_cls else ("patch",))
    }
    for consumer in consumers:
        A = torch.eye(DIM, dtype=torch.float64) + 0.1 * torch.randn(
            DIM, DIM, generator=g, dtype=torch.float64
        )
        c = 0.1 * torch.randn(DIM, generator=g, dtype=torch.float64)
        fold_linear_map(consumer, A, c)
        i, part = index[consumer.layer], 0 if consumer.part == "patch" else 1
        value = mapped[i][part]
        mapped[i][part] = (
            torch.einsum("ij,bjhw->bihw", A, value) + c[None, :, None, None] if part == 0 else value @ A.T + c
        )
    with torch.no_grad():
        want = head([(p, c) for p, c in mapped], (20, 24))
        got = folded(feats, (20, 24))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)

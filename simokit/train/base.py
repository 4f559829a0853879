"""Pre-train the small base ViT on the embedded scenes by masked image modelling.

The demo cannot download DINOv2 weights, so it makes its own (weak) foundation model: the
encoder sees images with half of the patch embeddings replaced by the mask token and a linear
decoder predicts the masked patches' per-patch-normalised pixels (SimMIM / MAE-style targets).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from simokit.data import SceneArrays
from simokit.models import DinoVisionTransformer, build_encoder
from simokit.train.config import BaseConfig, StageConfig
from simokit.train.loop import batches, run_stage


def patchify(images: Tensor, patch: int) -> Tensor:
    """(B, 3, H, W) -> (B, N, patch*patch*3) pixel patches in row-major patch order."""
    b, c, h, w = images.shape
    x = images.reshape(b, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // patch) * (w // patch), patch * patch * c)


def random_masks(batch: int, num_patches: int, ratio: float, generator: torch.Generator) -> Tensor:
    """(B, N) bool masks with exactly round(ratio * N) patches masked per image."""
    k = max(1, round(ratio * num_patches))
    order = torch.rand(batch, num_patches, generator=generator).argsort(dim=1)
    masks = torch.zeros(batch, num_patches, dtype=torch.bool)
    masks.scatter_(1, order[:, :k], True)
    return masks


def mim_loss(encoder: DinoVisionTransformer, decoder: nn.Linear, images: Tensor, masks: Tensor) -> Tensor:
    """Mean squared error of the decoded masked patches against per-patch-normalised pixels."""
    patch = encoder.patch_size
    target = patchify(images, patch)
    mean = target.mean(dim=-1, keepdim=True)
    var = target.var(dim=-1, keepdim=True)
    target = (target - mean) / (var + 1e-6).sqrt()
    tokens = encoder.forward_features(images, masks=masks)["x_norm_patchtokens"]
    pred = decoder(tokens)
    return F.mse_loss(pred[masks], target[masks])


def pretrain_base(
    cfg: BaseConfig, data: SceneArrays, progress: bool = True
) -> tuple[DinoVisionTransformer, list[float]]:
    """Pre-train `cfg.encoder` on `data` images; returns the encoder and the loss history."""
    torch.manual_seed(cfg.seed)
    encoder = build_encoder(cfg.encoder, img_size=data.image.shape[1])
    patch = encoder.patch_size
    decoder = nn.Linear(encoder.embed_dim, patch * patch * 3)
    gen = torch.Generator().manual_seed(cfg.seed)
    stream = batches(data, cfg.batch, (), cfg.seed)
    num_patches = (data.image.shape[1] // patch) * (data.image.shape[2] // patch)
    encoder.train()

    def step(_: int) -> Tensor:
        images, _targets = next(stream)
        masks = random_masks(images.shape[0], num_patches, cfg.mask_ratio, gen)
        return mim_loss(encoder, decoder, images, masks)

    stage = StageConfig(steps=cfg.steps, lr=cfg.lr, weight_decay=cfg.weight_decay, warmup=cfg.warmup)
    params = list(encoder.parameters()) + list(decoder.parameters())
    history = run_stage(params, stage, step, "pre-train base", progress)
    encoder.eval()
    return encoder, history

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
from simokit.models.heads import apply_activation
from simokit.recipe import BaseConfig, StageConfig
from simokit.tasks import get_task
from simokit.tasks.losses import task_loss
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


def unpatchify(patches: Tensor, patch: int, grid: tuple[int, int]) -> Tensor:
    """(B, N, patch*patch*C) -> (B, C, H, W); inverse of `patchify`."""
    b, _, d = patches.shape
    c = d // (patch * patch)
    x = patches.reshape(b, grid[0], grid[1], patch, patch, c)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(b, c, grid[0] * patch, grid[1] * patch)


def mim_target(images: Tensor, patch: int) -> Tensor:
    """Per-patch-normalised pixels (B, N, patch*patch*3), the MAE 'norm_pix' target."""
    target = patchify(images, patch)
    mean = target.mean(dim=-1, keepdim=True)
    var = target.var(dim=-1, keepdim=True)
    return (target - mean) / (var + 1e-6).sqrt()


class PretrainDecoders(nn.Module):
    """Per-patch linear decoders: masked pixels, plus optional low-level dense signals."""

    def __init__(self, embed_dim: int, patch: int, aux_tasks: tuple[str, ...]) -> None:
        super().__init__()
        self.patch = patch
        self.pixels = nn.Linear(embed_dim, patch * patch * 3)
        self.aux = nn.ModuleDict(
            {t: nn.Linear(embed_dim, patch * patch * get_task(t).out_channels) for t in aux_tasks}
        )

    def loss(
        self, encoder: DinoVisionTransformer, images: Tensor, masks: Tensor, targets: dict[str, Tensor]
    ) -> Tensor:
        """MIM loss on masked patches + each auxiliary task's loss on the full image."""
        tokens = encoder.forward_features(images, masks=masks)["x_norm_patchtokens"]
        if tokens is None:
            raise RuntimeError("encoder returned no patch tokens")
        target = mim_target(images, self.patch)
        total = F.mse_loss(self.pixels(tokens)[masks], target[masks])
        grid = (images.shape[2] // self.patch, images.shape[3] // self.patch)
        for task, decoder in self.aux.items():
            raw = unpatchify(decoder(tokens), self.patch, grid)
            pred = apply_activation(raw, get_task(task).activation)
            total = total + task_loss(task, pred, targets[task])
        return total


def pretrain_base(
    cfg: BaseConfig, data: SceneArrays, progress: bool = True
) -> tuple[DinoVisionTransformer, list[float]]:
    """Pre-train `cfg.encoder` on `data` images; returns the encoder and the loss history."""
    torch.manual_seed(cfg.seed)
    encoder = build_encoder(cfg.encoder, img_size=data.image.shape[1])
    patch = encoder.patch_size
    decoders = PretrainDecoders(encoder.embed_dim, patch, cfg.aux_tasks)
    gen = torch.Generator().manual_seed(cfg.seed)
    stream = batches(data, cfg.batch, cfg.aux_tasks, cfg.seed)
    num_patches = (data.image.shape[1] // patch) * (data.image.shape[2] // patch)
    encoder.train()

    def step(_: int) -> Tensor:
        images, targets = next(stream)
        masks = random_masks(images.shape[0], num_patches, cfg.mask_ratio, gen)
        return decoders.loss(encoder, images, masks, targets)

    stage = StageConfig(steps=cfg.steps, lr=cfg.lr, weight_decay=cfg.weight_decay, warmup=cfg.warmup)
    params = list(encoder.parameters()) + list(decoders.parameters())
    history = run_stage(params, stage, step, "pre-train base", progress)
    encoder.eval()
    return encoder, history

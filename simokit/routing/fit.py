"""SiM routing, build side: router features from an early encoder block, fitting, a routed torch model.

The router reads the final-norm patch tokens of one block of the base encoder (every domain's
merged encoder starts from it, so its features describe the input, not a task). Running only the
first `block + 1` blocks keeps the router's cost a fraction of one engine pass; `sweep_blocks`
measures accuracy and cost per block so the choice is made on numbers. The numpy scoring lives in
simokit.runtime.router so the robot side routes without torch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from simokit.errors import ShapeError
from simokit.models import DinoVisionTransformer, MultiTaskModel
from simokit.runtime.router import Hysteresis, SubspaceRouter, fit_basis

GRID = 4  # "grid" router features: token averages over GRID x GRID image regions


class RouterFeatures(nn.Module):
    """(B, 3, H, W) images -> pooled (B, C), grid (B, C·16) or patch (B, N, C) tokens of one block.

    "grid" averages the tokens over a 4x4 grid of image regions and concatenates them: where things
    are (sky above, road below) separates domains that average to similar token statistics.
    """

    def __init__(self, encoder: DinoVisionTransformer, block: int, mode: str = "grid") -> None:
        super().__init__()
        self.encoder, self.block, self.mode = encoder.eval(), block, mode

    def forward(self, x: Tensor) -> Tensor:
        """Tokens of `block` after the final norm (later blocks are never run)."""
        (tokens,) = self.encoder.get_intermediate_layers(x, n=[self.block], norm=True)
        if self.mode == "grid":
            # int(): the router graph is exported at one size (ONNX pooling needs static windows)
            p = self.encoder.patch_size
            h, w = int(x.shape[2]) // p, int(x.shape[3]) // p
            if h % GRID or w % GRID:
                raise ShapeError(
                    f"grid router features need a token grid divisible by {GRID}; {h}x{w} tokens at "
                    f"{int(x.shape[2])}x{int(x.shape[3])} px (use 112 or 224 px, or routing.mode pooled)"
                )
            cells = tokens.reshape(-1, GRID, h // GRID, GRID, w // GRID, tokens.shape[-1]).mean(dim=(2, 4))
            return cells.permute(0, 3, 1, 2).flatten(1)  # (B, C·GRID·GRID), channel-major like a pooled map
        return tokens.mean(dim=1) if self.mode == "pooled" else tokens


@torch.no_grad()
def router_features(net: RouterFeatures, images: Tensor, batch: int = 32) -> np.ndarray:
    """Features of `images` (N, 3, H, W) as float32 numpy, computed in batches."""
    return torch.cat([net(images[i : i + batch]) for i in range(0, len(images), batch)]).numpy()


def build_router(
    encoder: DinoVisionTransformer,
    support: dict[str, Tensor],
    block: int,
    mode: str = "grid",
    energy: float = 0.99,
    max_rank: int = 16,
) -> SubspaceRouter:
    """One SVD basis per domain from its support images (each (n, 3, H, W))."""
    net = RouterFeatures(encoder, block, mode)
    width = encoder.embed_dim if mode == "patch" else -1  # patch: a row per token; else one per image
    bases = [fit_basis(_rows(router_features(net, x), width), energy, max_rank) for x in support.values()]
    return SubspaceRouter(tuple(support), bases, block, mode)


def _rows(feats: np.ndarray, width: int) -> np.ndarray:
    return feats.reshape(-1, width) if width > 0 else feats.reshape(len(feats), -1)


@dataclass
class BlockChoice:
    """Routing accuracy on held-out images and the router's cost when it reads one block."""

    block: int
    accuracy: float
    per_domain: dict[str, float]
    ms_per_image: float
    ranks: list[int]


def sweep_blocks(
    encoder: DinoVisionTransformer,
    support: dict[str, Tensor],
    held_out: dict[str, Tensor],
    mode: str = "grid",
    energy: float = 0.99,
    max_rank: int = 16,
) -> list[BlockChoice]:
    """Fit a router on every block and measure its accuracy on `held_out` and its time per image."""
    out = []
    for block in range(encoder.depth):
        router = build_router(encoder, support, block, mode, energy, max_rank)
        net = RouterFeatures(encoder, block, mode)
        per_domain, hits, total, seconds = {}, 0, 0, 0.0
        for i, (domain, x) in enumerate(held_out.items()):
            t0 = time.perf_counter()
            feats = router_features(net, x)
            seconds += time.perf_counter() - t0
            picked = router.route(feats)
            per_domain[domain] = float((picked == i).mean())
            hits, total = hits + int((picked == i).sum()), total + len(picked)
        ranks = [b.shape[1] for b in router.bases]
        out.append(
            BlockChoice(block, hits / max(total, 1), per_domain, 1000 * seconds / max(total, 1), ranks)
        )
    return out


def pick_block(choices: list[BlockChoice], tolerance: float = 0.02) -> BlockChoice:
    """The earliest (cheapest) block whose accuracy is within `tolerance` of the best block's."""
    best = max(c.accuracy for c in choices)
    return next(c for c in choices if c.accuracy >= best - tolerance)


class RoutedModel(nn.Module):
    """Routes each image of a batch to one domain's model by the SVD router; torch reference path."""

    def __init__(
        self, router: SubspaceRouter, encoder: DinoVisionTransformer, models: dict[str, MultiTaskModel]
    ) -> None:
        super().__init__()
        self.router = router
        self.features = RouterFeatures(encoder, router.block, router.mode)
        self.models = nn.ModuleDict(models)
        self.counts = dict.fromkeys(router.domains, 0)

    @torch.no_grad()
    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """(B, 3, H, W) -> {task: (B, ...)} with each image run by its routed domain's model."""
        picked = self.router.route(self.features(x).cpu().numpy())
        out: dict[str, Tensor] = {}
        for index, domain in enumerate(self.router.domains):
            rows = np.flatnonzero(picked == index)
            if len(rows) == 0:
                continue
            self.counts[domain] += len(rows)
            pred = self.models[domain](x[torch.from_numpy(rows)])
            for task, value in pred.items():
                if task not in out:
                    out[task] = value.new_zeros((x.shape[0], *value.shape[1:]))
                out[task][torch.from_numpy(rows)] = value
        return out


def video_switches(router: SubspaceRouter, feats: np.ndarray, margin: float) -> tuple[list[int], int]:
    """Domain per frame of a (T, ...) feature sequence with hysteresis, and how often it switched."""
    h = Hysteresis(margin)
    chosen = [h(r) for r in router.residuals(feats)]
    return chosen, h.switches

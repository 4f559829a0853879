"""Learning layer-wise merge coefficients with the TAP loss, without labels (AdaMerging-TAP).

λ starts at `init` and is trained with Adam to minimise TAP: the cosine distance between the
merged and each expert encoder's patch tokens, at the blocks that task's head reads. Each task's
term is divided by an exponential moving average of itself, so a task whose features drift far
(large distance) does not drown the others. The average is floored at `ema_floor` times its
first value: without a floor, a task whose distance shrinks gets an ever larger weight (the
objective behaves like Σ log d_t), and on the demo the learned λ collapsed onto one expert
(λ_seg → 1, the others → 0), lowering that task's TAP to 0 while the mean TAP rose from 0.65 to 1.09.
"""

from __future__ import annotations

import math
import resource
import time
from dataclasses import dataclass, field
from typing import cast

import torch
from torch import Tensor, nn
from tqdm import tqdm

from simokit.device import on_device, resolve_device
from simokit.errors import ConfigError
from simokit.merge.learned.coefficients import (
    METHOD,
    AdaMergingParams,
    TaskVectorStack,
    merged_state,
    stack_task_vectors,
)
from simokit.models import DinoVisionTransformer

Features = dict[int, Tensor]  # block -> (B, N, C) final-norm patch tokens


class _PatchTokens(nn.Module):
    """Final-norm patch tokens (B, N, C) of some blocks, as a module functional_call can run."""

    def __init__(self, encoder: DinoVisionTransformer, blocks: list[int]) -> None:
        super().__init__()
        self.encoder, self.blocks = encoder, blocks

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """(B, 3, H, W) -> one (B, N, C) per block."""
        return tuple(self.encoder.get_intermediate_layers(x, n=self.blocks, norm=True))


def cosine_tap(merged: Features, expert: Features) -> Tensor:
    """Mean 1 − cos over patch tokens and blocks between two {block: (B, N, C)} feature sets."""
    terms = [1.0 - nn.functional.cosine_similarity(merged[b], expert[b], dim=-1).mean() for b in expert]
    return torch.stack(terms).mean()


class EmaNormalizer:
    """Divides each task's loss by a moving average of its own (detached) magnitude, floored."""

    def __init__(self, decay: float, floor: float = 0.0) -> None:
        self.decay, self.floor = decay, floor
        self.average: dict[str, float] = {}
        self.first: dict[str, float] = {}

    def __call__(self, task: str, value: Tensor) -> Tensor:
        """value / max(EMA(value), floor · first value); the EMA is updated first (step one gives 1)."""
        v = float(value.detach())
        prev = self.average.get(task)
        self.first.setdefault(task, v)
        self.average[task] = v if prev is None else self.decay * prev + (1 - self.decay) * v
        return value / max(self.average[task], self.floor * self.first[task], 1e-12)


@dataclass
class AdaResult:
    """Learned (T, L) coefficients, the loss curve, TAP (relative to zero-shot) before/after, costs."""

    coefficients: list[list[float]]
    losses: list[float] = field(default_factory=list)
    tap_before: dict[str, float] = field(default_factory=dict)
    tap_after: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    peak_gpu_mb: float = 0.0
    task_vector_mb: float = 0.0


@dataclass
class _Problem:
    """Everything the optimisation reads, on one device."""

    net: _PatchTokens
    base: dict[str, Tensor]
    stack: TaskVectorStack
    images: Tensor
    targets: dict[str, Features]  # each task's expert features on all images
    blocks: dict[str, list[int]]
    zero: dict[str, float]  # zero-shot cosine TAP per task

    def relative_tap(self, coef: Tensor) -> dict[str, float]:
        """Cosine TAP of the merge on all images, per task relative to zero-shot, and the mean."""
        with torch.no_grad():
            state = merged_state(self.base, self.stack, coef.detach())
        taps = _tap_per_task(self.net, state, self.images, self.targets, self.blocks)
        out = {t: taps[t] / max(self.zero[t], 1e-12) for t in self.targets}
        out["mean"] = sum(out.values()) / len(self.targets)
        return {k: round(v, 5) for k, v in out.items() if not math.isnan(v)}


def learn_coefficients(
    encoder: DinoVisionTransformer,
    base: dict[str, Tensor],
    experts: dict[str, dict[str, Tensor]],
    blocks: dict[str, list[int]],
    images: Tensor,
    params: AdaMergingParams,
    progress: bool = False,
    device: str = "cpu",
) -> AdaResult:
    """Minimise normalised cosine TAP over (T, L) coefficients on unlabelled `images` (N, 3, H, W).

    `encoder` is any module of the architecture (its weights are replaced functionally); `blocks`
    names, per task, the blocks whose patch tokens its head reads. `device` ('cpu', 'cuda', 'auto')
    is where the task vectors, features and optimisation live; the coefficients come back as numbers.
    """
    dev = resolve_device(device)
    stack = stack_task_vectors(base, list(experts.values()), params)  # CPU: TIES top-k histograms
    check_memory(stack, images, encoder, dev)
    if dev.type != "cpu":
        stack.vectors = {k: v.to(dev) for k, v in stack.vectors.items()}
        base = {k: v.to(dev) for k, v in base.items()}
        experts = {t: {k: v.to(dev) for k, v in sd.items()} for t, sd in experts.items()}
        images = images.to(dev)
        encoder = cast(DinoVisionTransformer, on_device(encoder, dev))  # the caller's stays put
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
    start = time.perf_counter()
    net = _PatchTokens(encoder.eval(), sorted({b for bs in blocks.values() for b in bs}))
    targets = {t: _features(net, experts[t], images, blocks[t]) for t in experts}
    zero = _tap_per_task(net, base, images, targets, blocks)
    problem = _Problem(net, base, stack, images, targets, blocks, zero)
    result = _optimise(problem, params, progress, dev)
    result.seconds = time.perf_counter() - start
    result.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if dev.type == "cuda":
        result.peak_gpu_mb = torch.cuda.max_memory_allocated(dev) / 2**20
    result.task_vector_mb = sum(v.numel() * v.element_size() for v in stack.vectors.values()) / 2**20
    return result


def _optimise(problem: _Problem, params: AdaMergingParams, progress: bool, dev: torch.device) -> AdaResult:
    """Adam on the clamped coefficients; TAP before and after on all images."""
    tasks, net, blocks = list(problem.targets), problem.net, problem.blocks
    init = 0.3 if params.init is None else params.init
    coef = torch.full((len(tasks), problem.stack.num_layers), float(init), device=dev, requires_grad=True)
    opt = torch.optim.Adam([coef], lr=params.lr)
    norm = EmaNormalizer(params.ema, params.ema_floor)
    gen = torch.Generator().manual_seed(params.seed)
    result = AdaResult([])
    result.tap_before = problem.relative_tap(coef)
    for _ in tqdm(range(params.iters), desc=f"{METHOD} ({params.base})", disable=not progress, leave=False):
        idx = torch.randperm(problem.images.shape[0], generator=gen)[: params.batch]
        feats = _run(net, merged_state(problem.base, problem.stack, coef), problem.images[idx])
        per_task = [
            norm(t, cosine_tap(_pick(feats, net.blocks, blocks[t]), _rows(problem.targets[t], idx)))
            for t in tasks
        ]
        loss = torch.stack(per_task).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            coef.clamp_(0.0, params.max_coef)
        result.losses.append(float(loss.detach()))
    result.coefficients = [[round(float(v), 5) for v in row] for row in coef.detach()]
    result.tap_after = problem.relative_tap(coef.detach())
    return result


def check_memory(
    stack: TaskVectorStack, images: Tensor, encoder: DinoVisionTransformer, device: torch.device | None = None
) -> None:
    """Refuse, with a suggestion, when task vectors + merged weights + activations would not fit
    in RAM (or, on a GPU, in its free memory: everything but the CPU-side stack moves there)."""
    params = sum(v[0].numel() for v in stack.vectors.values())
    tokens = images.shape[0] * (images.shape[2] // 14) * (images.shape[3] // 14)
    activations = 40 * tokens * encoder.embed_dim * encoder.depth  # autograd keeps ~10 (B,N,C) per block
    need = 4 * (params * (stack.num_tasks + 3) + activations + images.numel())
    on_gpu = device is not None and device.type == "cuda"
    available = torch.cuda.mem_get_info(device)[0] if on_gpu else _available_bytes()
    if available is not None and need > 0.9 * available:
        where = f"GPU {device}" if on_gpu else "RAM"
        raise ConfigError(
            f"{METHOD}: needs ~{need / 2**30:.1f} GiB ({stack.num_tasks} task vectors of a "
            f"{params / 1e6:.0f}M-parameter encoder) but {available / 2**30:.1f} GiB of {where} is free; "
            "merge fewer tasks, lower "
            "merge.tap_images, or select a grid merge by TAP instead (methods: [ties], select: tap)"
        )


def _available_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _run(net: _PatchTokens, state: dict[str, Tensor], x: Tensor) -> tuple[Tensor, ...]:
    return torch.func.functional_call(net, {f"encoder.{k}": v for k, v in state.items()}, (x,))


def _pick(feats: tuple[Tensor, ...], all_blocks: list[int], wanted: list[int]) -> Features:
    return {b: feats[all_blocks.index(b)] for b in wanted}


def _rows(feats: Features, idx: Tensor) -> Features:
    return {b: f[idx] for b, f in feats.items()}


@torch.no_grad()
def _features(net: _PatchTokens, state: dict[str, Tensor], images: Tensor, wanted: list[int]) -> Features:
    outs = [
        _pick(_run(net, state, images[i : i + 32]), net.blocks, wanted) for i in range(0, len(images), 32)
    ]
    return {b: torch.cat([o[b] for o in outs]) for b in wanted}


@torch.no_grad()
def _tap_per_task(
    net: _PatchTokens,
    state: dict[str, Tensor],
    images: Tensor,
    targets: dict[str, Features],
    blocks: dict[str, list[int]],
) -> dict[str, float]:
    """Cosine TAP of one encoder state against every task's expert: one pass over the images for all."""
    feats = _features(net, state, images, net.blocks)
    return {t: float(cosine_tap({b: feats[b] for b in blocks[t]}, targets[t])) for t in targets}

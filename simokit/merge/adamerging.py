"""AdaMerging with the TAP loss (seed 002): learn merge coefficients per task and layer, without labels.

θ = θ0 + Σ_t λ[t, l(key)] τ_t, with l the layer of a tensor (0 embeddings, 1..depth blocks,
depth+1 final norm) and τ_t either plain task vectors ("sum") or TIES-trimmed, sign-elected ones
("ties", AdaMerging++). λ starts at task arithmetic's α and is trained with Adam to minimise TAP:
the cosine distance between the merged and each expert encoder's patch tokens, at the blocks that
task's head reads. Each task's term is divided by an exponential moving average of itself, so a
task whose features drift far (large distance) does not drown the others. The average is floored
at `ema_floor` times its first value: without a floor, a task whose distance shrinks gets an ever
larger weight (the objective behaves like Σ log d_t), and on the demo the learned λ collapsed onto
one expert (λ_seg → 1, the others → 0), lowering that task's TAP to 0 while the mean TAP rose from
0.65 to 1.09. The learned λ are stored in the candidate's hyper-parameters, so rebuilding the merge
needs no second optimisation.
"""

from __future__ import annotations

import math
import resource
import time
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import Tensor, nn
from tqdm import tqdm

from simokit.device import on_device, resolve_device
from simokit.errors import ConfigError
from simokit.merge.api import check_experts, prepare, run_stat_passes
from simokit.merge.task_vectors import block_index, infer_depth, task_vectors
from simokit.models import DinoVisionTransformer

METHOD = "adamerging_tap"
BASES = ("sum", "ties")


@dataclass(frozen=True)
class AdaMergingParams:
    """Hyper-parameters; `coefficients` (T x L) is filled in by learning and then used as is."""

    base: str = "sum"
    k: float = 0.2
    init: float | None = None
    iters: int = 500
    batch: int = 16
    lr: float = 5e-3
    ema: float = 0.9
    ema_floor: float = 0.5
    max_coef: float = 1.5
    seed: int = 0
    coefficients: list[list[float]] | None = None

    def __post_init__(self) -> None:
        if self.base not in BASES:
            raise ConfigError(f"{METHOD}: base={self.base!r} must be one of {', '.join(BASES)}")
        for name, low in (("iters", 1), ("batch", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or value < low:
                raise ConfigError(f"{METHOD}: {name}={value!r} must be an integer >= {low}")
        if not (0 < self.lr < 1 and 0 <= self.ema < 1 and 0 < self.k <= 1 and self.max_coef > 0):
            raise ConfigError(f"{METHOD}: need 0 < lr < 1, 0 <= ema < 1, 0 < k <= 1 and max_coef > 0")
        if not 0 <= self.ema_floor <= 1:
            raise ConfigError(f"{METHOD}: ema_floor={self.ema_floor} must be in [0, 1]")

    @classmethod
    def from_hparams(cls, hparams: dict[str, Any]) -> AdaMergingParams:
        """Build from a grid entry; unknown names raise ConfigError listing the valid ones."""
        valid = set(cls.__dataclass_fields__)
        unknown = sorted(set(hparams) - valid)
        if unknown:
            raise ConfigError(
                f"{METHOD} has no hyper-parameter {', '.join(unknown)}; valid: {', '.join(sorted(valid))}"
            )
        return cls(**hparams)


def default_grid() -> list[dict[str, Any]]:
    """Learned on top of task arithmetic and of TIES task vectors."""
    return [{"base": "sum"}, {"base": "ties"}]


@dataclass
class TaskVectorStack:
    """Per key, the T experts' (processed) task vectors stacked (T, ...), and each key's layer."""

    vectors: dict[str, Tensor]
    layers: dict[str, int]
    num_layers: int

    @property
    def num_tasks(self) -> int:
        """T."""
        return next(iter(self.vectors.values())).shape[0]


def stack_task_vectors(
    base: dict[str, Tensor], experts: list[dict[str, Tensor]], params: AdaMergingParams
) -> TaskVectorStack:
    """τ_t for every float tensor (TIES-processed when params.base == 'ties'), grouped by layer."""
    check_experts(base, experts)
    depth = infer_depth(base)
    float_keys = [k for k, v in base.items() if v.is_floating_point()]

    def load(key: str) -> tuple[Tensor, list[Tensor]]:
        return base[key], [e[key] for e in experts]

    with torch.no_grad():
        if params.base == "ties":
            merger = prepare(len(experts), list(base), "ties", {"k": params.k})
            run_stat_passes(merger, list(base), set(float_keys), load)
            vectors = {k: merger.task_parts(k, task_vectors(*load(k))) for k in float_keys}  # type: ignore[attr-defined]
        else:
            vectors = {k: torch.stack(task_vectors(*load(k))) for k in float_keys}
    return TaskVectorStack(vectors, {k: block_index(k, depth) for k in float_keys}, depth + 2)


def merged_state(base: dict[str, Tensor], stack: TaskVectorStack, coef: Tensor) -> dict[str, Tensor]:
    """θ0 + Σ_t coef[t, layer] τ_t for float tensors, the base's for the rest (differentiable in coef)."""
    out = dict(base)
    for key, tau in stack.vectors.items():
        weights = coef[:, stack.layers[key]].reshape(-1, *([1] * (tau.dim() - 1)))
        out[key] = base[key].to(tau.dtype) + (weights * tau).sum(dim=0)
    return out


class _PatchTokens(nn.Module):
    """Final-norm patch tokens (B, N, C) of some blocks, as a module functional_call can run."""

    def __init__(self, encoder: DinoVisionTransformer, blocks: list[int]) -> None:
        super().__init__()
        self.encoder, self.blocks = encoder, blocks

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """(B, 3, H, W) -> one (B, N, C) per block."""
        return tuple(self.encoder.get_intermediate_layers(x, n=self.blocks, norm=True))


def cosine_tap(merged: dict[int, Tensor], expert: dict[int, Tensor]) -> Tensor:
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
    tasks = list(experts)
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
    all_blocks = sorted({b for bs in blocks.values() for b in bs})
    net = _PatchTokens(encoder.eval(), all_blocks)
    targets = {t: _features(net, experts[t], images, blocks[t]) for t in tasks}
    zero = _tap_per_task(net, base, images, targets, blocks)
    init = 0.3 if params.init is None else params.init
    coef = torch.full((len(tasks), stack.num_layers), float(init), device=dev, requires_grad=True)
    opt = torch.optim.Adam([coef], lr=params.lr)
    norm = EmaNormalizer(params.ema, params.ema_floor)
    gen = torch.Generator().manual_seed(params.seed)
    result = AdaResult([])
    result.tap_before = _relative_tap(net, base, stack, coef, images, targets, blocks, zero)
    for _ in tqdm(range(params.iters), desc=f"{METHOD} ({params.base})", disable=not progress, leave=False):
        idx = torch.randperm(images.shape[0], generator=gen)[: params.batch]
        feats = _run(net, merged_state(base, stack, coef), images[idx])
        per_task = [
            norm(t, cosine_tap(_pick(feats, all_blocks, blocks[t]), _rows(targets[t], idx))) for t in tasks
        ]
        loss = torch.stack(per_task).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            coef.clamp_(0.0, params.max_coef)
        result.losses.append(float(loss.detach()))
    result.coefficients = [[round(float(v), 5) for v in row] for row in coef.detach()]
    result.tap_after = _relative_tap(net, base, stack, coef.detach(), images, targets, blocks, zero)
    result.seconds = time.perf_counter() - start
    result.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if dev.type == "cuda":
        result.peak_gpu_mb = torch.cuda.max_memory_allocated(dev) / 2**20
    result.task_vector_mb = sum(v.numel() * v.element_size() for v in stack.vectors.values()) / 2**20
    return result


def adamerged_state(
    base: dict[str, Tensor], experts: list[dict[str, Tensor]], hparams: dict[str, Any]
) -> dict[str, Tensor]:
    """The merged encoder state for learned coefficients in `hparams` (no optimisation)."""
    params = AdaMergingParams.from_hparams(hparams)
    if params.coefficients is None:
        raise ConfigError(f"{METHOD}: no learned coefficients; run learn_coefficients first")
    stack = stack_task_vectors(base, experts, params)
    coef = torch.tensor(params.coefficients, dtype=torch.float32)
    if tuple(coef.shape) != (stack.num_tasks, stack.num_layers):
        raise ConfigError(
            f"{METHOD}: coefficients are {tuple(coef.shape)} but this merge needs "
            f"({stack.num_tasks} tasks, {stack.num_layers} layers)"
        )
    with torch.no_grad():
        merged = merged_state(base, stack, coef)
    return {k: v.to(base[k].dtype) for k, v in merged.items()}


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


def _pick(feats: tuple[Tensor, ...], all_blocks: list[int], wanted: list[int]) -> dict[int, Tensor]:
    return {b: feats[all_blocks.index(b)] for b in wanted}


def _rows(feats: dict[int, Tensor], idx: Tensor) -> dict[int, Tensor]:
    return {b: f[idx] for b, f in feats.items()}


@torch.no_grad()
def _features(
    net: _PatchTokens, state: dict[str, Tensor], images: Tensor, wanted: list[int]
) -> dict[int, Tensor]:
    outs = [
        _pick(_run(net, state, images[i : i + 32]), net.blocks, wanted) for i in range(0, len(images), 32)
    ]
    return {b: torch.cat([o[b] for o in outs]) for b in wanted}


@torch.no_grad()
def _tap_per_task(
    net: _PatchTokens,
    state: dict[str, Tensor],
    images: Tensor,
    targets: dict[str, dict[int, Tensor]],
    blocks: dict[str, list[int]],
) -> dict[str, float]:
    """Cosine TAP of one encoder state against every task's expert: one pass over the images for all."""
    feats = _features(net, state, images, net.blocks)
    return {t: float(cosine_tap({b: feats[b] for b in blocks[t]}, targets[t])) for t in targets}


def _relative_tap(
    net: _PatchTokens,
    base: dict[str, Tensor],
    stack: TaskVectorStack,
    coef: Tensor,
    images: Tensor,
    targets: dict[str, dict[int, Tensor]],
    blocks: dict[str, list[int]],
    zero: dict[str, float],
) -> dict[str, float]:
    """Cosine TAP of the current merge on all images, per task relative to zero-shot, and the mean."""
    with torch.no_grad():
        state = merged_state(base, stack, coef.detach())
    taps = _tap_per_task(net, state, images, targets, blocks)
    out = {t: taps[t] / max(zero[t], 1e-12) for t in targets}
    out["mean"] = sum(out.values()) / len(targets)
    return {k: round(v, 5) for k, v in out.items() if not math.isnan(v)}

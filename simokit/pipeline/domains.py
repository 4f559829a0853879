"""Routed merging across domains: per-domain experts -> one engine per domain -> SiM router -> scores.

For each domain (indoor rooms, outdoor streets on the embedded benchmark) the recipe's experts are
fine-tuned from the shared base on that domain's scenes only, merged with one method and re-aligned
on that domain's calibration images. The comparison, per domain on its test split and normalised
by that domain's experts: the oracle (the right domain's engine), the routed engines (SiM picks per
image), and one encoder merged from every domain's experts (with the true domain's re-aligned heads,
which favours it: it is told the domain the others must infer).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from simokit.data import SceneArrays, to_tensor_batch
from simokit.merge.api import merge_state_dicts
from simokit.merge.inputs import Inputs, load_inputs
from simokit.models import DinoVisionTransformer, MultiTaskModel
from simokit.pipeline.storage import storage_lines, storage_sizes
from simokit.realign.base import ExpertTargets, RealignSettings, realigned_model
from simokit.realign.registry import get_realigner
from simokit.recipe import PipelineConfig
from simokit.routing.compress import DeltaStats, compress_delta
from simokit.routing.fit import BlockChoice, RoutedModel, build_router, pick_block, sweep_blocks
from simokit.runtime.router import SubspaceRouter
from simokit.tasks.evaluate import evaluate
from simokit.tasks.score import Metrics, normalized_score
from simokit.train.pipeline import Splits, base_path, ensure_base, ensure_expert, load_data


@dataclass
class DomainResult:
    """Engines per domain, the router, and the comparison table's numbers."""

    engines: dict[str, MultiTaskModel]
    router: SubspaceRouter
    base: DinoVisionTransformer
    blocks: list[BlockChoice]
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # model -> domain -> score
    routing_accuracy: dict[str, float] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    splits: dict[str, Splits] = field(default_factory=dict)
    storage: dict[str, Any] = field(default_factory=dict)
    deltas: dict[str, DeltaStats] = field(default_factory=dict)


def domain_splits(cfg: PipelineConfig, progress: bool) -> dict[str, Splits]:
    """Train/val/calib/test scenes of each routing domain alone."""
    out = {}
    for domain in cfg.routing.domains:
        only = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, domains=(domain,)))
        out[domain] = load_data(only, progress=progress, merge=True)
    return out


def run_domains(cfg: PipelineConfig, progress: bool = True) -> DomainResult:
    """Train (cached) per-domain experts, merge and re-align per domain, fit the router, score all."""
    r = cfg.routing
    t0 = time.perf_counter()
    ensure_base(cfg, load_data(cfg, progress=progress), progress)
    splits = domain_splits(cfg, progress)
    paths = {
        d: [ensure_expert(cfg, t, splits[d], progress, domain=d) for t in cfg.experts.tasks] for d in splits
    }
    seconds = {"experts": time.perf_counter() - t0}
    inputs = {d: load_inputs(base_path(cfg), list(p))[0] for d, p in paths.items()}
    first = next(iter(inputs.values()))
    base = first.make_encoder(first.base_state)
    t0 = time.perf_counter()
    engines, deltas = {}, {}
    for d, inp in inputs.items():
        engines[d], deltas[d] = _engine(inp, list(inp.expert_states.values()), splits[d].calib, cfg, r.delta)
    everything = [sd for inp in inputs.values() for sd in inp.expert_states.values()]
    merged_all = {d: _engine(inputs[d], everything, splits[d].calib, cfg)[0] for d in inputs}
    full = {}
    if r.delta != "none":  # the same merge uncompressed, to show what the deltas cost
        for d, inp in inputs.items():
            full[d] = _engine(inp, list(inp.expert_states.values()), splits[d].calib, cfg)[0]
    seconds["merge"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    support = {d: _images(splits[d].calib, r.support) for d in splits}
    blocks = sweep_blocks(
        base, support, {d: _images(splits[d].val, 10**6) for d in splits}, r.mode, r.energy, r.max_rank
    )
    block = pick_block(blocks).block if r.block < 0 else r.block
    router = build_router(base, support, block, r.mode, r.energy, r.max_rank)
    seconds["router"] = time.perf_counter() - t0
    res = DomainResult(engines, router, base, blocks, seconds=seconds, splits=splits, deltas=deltas)
    res.storage = storage_sizes(first.base_state, engines, deltas)
    _score(res, cfg, inputs, merged_all, full, progress)
    return res


def _engine(
    domain: Inputs,
    experts: list[dict[str, torch.Tensor]],
    calib: SceneArrays | None,
    cfg: PipelineConfig,
    delta: str = "none",
) -> tuple[MultiTaskModel, DeltaStats]:
    """Merge `experts` with the routing recipe, compress the task vector as `delta` says, then
    re-align `domain`'s heads to its experts on `calib` (so the heads see the compressed encoder)."""
    r = cfg.routing
    state = merge_state_dicts(domain.base_state, experts, r.method, **r.hparams)
    state, stats = compress_delta(domain.base_state, state, delta, r.delta_rank, r.delta_density)
    merged = domain.make_encoder(state)
    if calib is None:
        raise RuntimeError("domain splits lack calibration images")
    targets = ExpertTargets(encoders={t: domain.make_encoder(sd) for t, sd in domain.expert_states.items()})
    m = cfg.merge  # merge.batch is not used here: the fits keep the settings' default batch
    settings = RealignSettings(n_images=m.realign_images, ridge=m.ridge, device=m.device)
    fitted = get_realigner(r.realign)(merged, domain.heads, calib, settings, targets)
    return realigned_model(merged, fitted), stats


def _images(data: SceneArrays | None, n: int) -> torch.Tensor:
    if data is None:
        raise RuntimeError("domain splits lack the requested split")
    return to_tensor_batch(np.asarray(data.image[: min(n, len(data))]))


def _score(
    res: DomainResult,
    cfg: PipelineConfig,
    inputs: dict[str, Any],
    merged_all: dict[str, MultiTaskModel],
    full: dict[str, MultiTaskModel],
    progress: bool,
) -> None:
    tasks, batch = cfg.experts.tasks, cfg.eval_batch
    routed = RoutedModel(res.router, res.base, res.engines)
    for domain in tqdm(list(res.splits), desc="domain scores", disable=not progress, leave=False):
        test = res.splits[domain].test
        if test is None:
            raise RuntimeError("domain splits lack a test split")
        inp = inputs[domain]
        experts: Metrics = {}
        for task, sd in inp.expert_states.items():
            model = MultiTaskModel(inp.make_encoder(sd), {task: inp.heads[task]}).eval()
            experts.update(evaluate(model, test, (task,), batch, inp.num_classes, device=cfg.merge.device))
        models: dict[str, torch.nn.Module] = {
            "oracle domain engine": res.engines[domain],
            **({"oracle domain engine, uncompressed": full[domain]} if full else {}),
            "routed (SiM)": routed,
            "one engine merged from all domains": merged_all[domain],
            **{
                f"{other} engine (wrong domain)": res.engines[other]
                for other in res.engines
                if other != domain
            },
        }
        before = dict(routed.counts)
        for name, candidate in models.items():
            # the routed model counts its picks (routing accuracy below): run it in place, on CPU
            device = "cpu" if candidate is routed else cfg.merge.device
            metrics = evaluate(candidate, test, tasks, batch, inp.num_classes, device=device)
            res.scores.setdefault(name, {})[domain] = normalized_score(metrics, experts)
        counts = {d: routed.counts[d] - before[d] for d in routed.counts}
        res.counts[domain] = counts
        res.routing_accuracy[domain] = counts[domain] / max(sum(counts.values()), 1)


def domain_report(res: DomainResult, cfg: PipelineConfig) -> str:
    """Markdown: routed vs oracle vs merged-everything per domain, routing accuracy, block sweep, cost."""
    domains = list(res.splits)
    lines = [
        "# Routed merging across domains (SiM)",
        "",
        f"Per-domain experts ({', '.join(cfg.experts.tasks)}) merged with `{cfg.routing.method}` "
        f"{cfg.routing.hparams} and `{cfg.routing.realign}` re-alignment, one engine per domain. Normalised "
        "score on each domain's test split relative to that domain's experts (1.0 = experts).",
        "",
        "| model | " + " | ".join(domains) + " | mean |",
        "|---|" + "---|" * (len(domains) + 1),
    ]
    for name, per in res.scores.items():
        cells = [f"{per[d]:.3f}" if d in per else "-" for d in domains]
        mean = sum(per.values()) / len(per)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {mean:.3f} |")
    acc = ", ".join(f"{d} {100 * a:.1f}%" for d, a in res.routing_accuracy.items())
    r = res.router
    lines += [
        "",
        f"Routing accuracy on the test images: {acc} (router: block {r.block}, {r.mode} features, ranks "
        f"{[b.shape[1] for b in r.bases]}, {r.size_bytes() / 1024:.1f} KiB of bases from "
        f"{cfg.routing.support} support images per domain).",
        "",
        "## Which block the router reads (validation split; time = torch CPU, per image)",
        "",
        "| block | accuracy | per domain | ms / image | ranks |",
        "|---|---|---|---|---|",
    ]
    for b in res.blocks:
        per_domain = ", ".join(f"{d} {100 * v:.1f}%" for d, v in b.per_domain.items())
        lines.append(
            f"| {b.block} | {100 * b.accuracy:.1f}% | {per_domain} | {b.ms_per_image:.2f} | {b.ranks} |"
        )
    lines += storage_lines(res.storage, res.deltas, cfg.routing)
    lines += ["", "Wall time: " + ", ".join(f"{k} {v:.1f} s" for k, v in res.seconds.items()), ""]
    return "\n".join(lines)

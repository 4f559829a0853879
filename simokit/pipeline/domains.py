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
from simokit.realign.least_squares import fit_realignment, realigned_model
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
    targets = {t: domain.make_encoder(sd) for t, sd in domain.expert_states.items()}
    fitted = fit_realignment(
        merged,
        targets,
        domain.heads,
        calib,
        mode=r.realign,
        n_images=cfg.merge.realign_images,
        ridge=cfg.merge.ridge,
        device=cfg.merge.device,
    )
    return realigned_model(merged, fitted), stats


def storage_sizes(
    base: dict[str, torch.Tensor], engines: dict[str, MultiTaskModel], deltas: dict[str, DeltaStats]
) -> dict[str, Any]:
    """Bytes of weights to store every domain's engine in full vs. one base plus a delta per domain.

    Uncompressed merges count as sparse deltas (a bit per encoder weight, the changed float32
    values); 'lowrank' deltas as their factors plus the exact vectors; 'sparse' as a bit per
    weight plus the kept values. Heads are stored in full either way. Measured on the actual
    merged encoders; the written bundle's file sizes are in its report.
    """
    numel = sum(v.numel() for v in base.values() if v.is_floating_point())
    out: dict[str, Any] = {"encoder_params": numel, "domains": {}}
    full, delta = 0, 4 * numel  # delta: the base is stored once
    for domain, model in engines.items():
        enc = model.encoder.state_dict()
        changed = sum(int((enc[k] != v).sum()) for k, v in base.items() if v.is_floating_point())
        heads = sum(p.numel() for p in model.heads.parameters())
        kind = deltas[domain].kind if domain in deltas else "none"
        stored = deltas[domain].stored if kind == "lowrank" else changed
        mask = 0 if kind == "lowrank" else numel // 8
        full += 4 * (numel + heads)
        delta += mask + 4 * stored + 4 * heads
        out["domains"][domain] = {"changed_fraction": changed / numel, "head_params": heads, "kind": kind}
    out.update(full_bytes=full, delta_bytes=delta)
    # D more domains alike: full grows by one encoder each, delta by the per-domain part
    per_full = full / len(engines)
    per_delta = (delta - 4 * numel) / len(engines)
    out["break_even_domains"] = 4 * numel / max(per_full - per_delta, 1e-9)
    return out


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
    lines += _storage_lines(res, cfg)
    lines += ["", "Wall time: " + ", ".join(f"{k} {v:.1f} s" for k, v in res.seconds.items()), ""]
    return "\n".join(lines)


def _storage_lines(res: DomainResult, cfg: PipelineConfig) -> list[str]:
    st = res.storage
    if not st:
        return []
    r = cfg.routing
    fractions = ", ".join(f"{d} {100 * v['changed_fraction']:.0f}%" for d, v in st["domains"].items())
    full, delta = st["full_bytes"] / 2**20, st["delta_bytes"] / 2**20
    verdict = "smaller" if delta < full else "larger"
    what = {
        "none": "a bit per weight, the changed float32 values",
        "lowrank": f"rank-{r.delta_rank} factors of every weight matrix's delta, vectors exact",
        "sparse": f"a bit per weight, the largest {100 * r.delta_density:g}% of the delta's values",
    }[r.delta]
    kept = ", ".join(
        f"{d} {100 * s.ratio:.1f}% of the numbers, {100 * s.energy:.1f}% of the delta's energy"
        for d, s in res.deltas.items()
    )
    lines = [
        "",
        "## Storage: full engines vs. one base plus per-domain deltas",
        "",
        f"Encoder weights each domain's engine changed from the base: {fractions}. "
        f"{len(st['domains'])} domains stored in full: {full:.1f} MiB of weights; the base once plus "
        f"per-domain deltas ({what}; the heads in full): {delta:.1f} MiB ({verdict}). "
        f"Deltas win from {st['break_even_domains']:.1f} domains on.",
    ]
    if r.delta == "none":
        lines[-1] += " This bundle stores full engines (`routing.delta: lowrank` or `sparse` stores deltas)."
    else:
        lines[-1] += f" Compressed deltas keep: {kept}; the bundle stores them (files below)."
    return lines

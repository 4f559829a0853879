"""What storing a routed model costs: every domain's engine in full vs. one base plus deltas."""

from __future__ import annotations

from typing import Any

import torch

from simokit.models import MultiTaskModel
from simokit.recipe import RoutingConfig
from simokit.routing.compress import DeltaStats


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


def storage_lines(st: dict[str, Any], deltas: dict[str, DeltaStats], r: RoutingConfig) -> list[str]:
    """Markdown: what full engines and base-plus-deltas storage cost, and what the deltas kept."""
    if not st:
        return []
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
        for d, s in deltas.items()
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

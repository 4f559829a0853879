"""Delta routed bundles at a real encoder size: bytes on disk, build time, engine open time.

Random weights (accuracy is the routing study's business; sizes and times do not depend on the
values): a base encoder made "trained-like" (no two tensors equal, see tests/export/test_deltas.py),
`--domains` domain engines whose encoders are base + a rank-`--rank` delta, linear heads. Writes the
same routed bundle twice, with full weights and as base + deltas, and times opening one domain
engine from each (the delta decode happens there).

  python benchmarks/delta_scale.py --arch vits14 --size 224 --rank 16 --out /tmp/delta-scale
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch

from simokit.data import to_tensor_batch
from simokit.export.onnx import ExportSpec
from simokit.profile.arch import merged_model
from simokit.routing.bundle import write_routed_bundle
from simokit.routing.compress import compress_delta
from simokit.routing.fit import build_router
from simokit.runtime import load
from simokit.runtime.bundle import disk_bytes

TASKS = ("seg", "depth")  # random normals are near-zero vectors whose direction is noise


def main() -> None:
    """Build both layouts, print and write sizes and times as JSON."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="vits14")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--domains", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("delta-scale"))
    args = ap.parse_args()
    template = merged_model(args.arch, args.size, TASKS)
    base = template.encoder
    with torch.no_grad():
        for p in base.parameters():
            p.add_(0.01 * torch.randn_like(p))
    engines = {}
    for i in range(args.domains):
        g = torch.Generator().manual_seed(i + 1)
        state = base.state_dict()
        merged = {
            k: v + 0.02 * torch.randn(v.shape, generator=g) if v.is_floating_point() else v
            for k, v in state.items()
        }
        model = copy.deepcopy(template)
        model.encoder.load_state_dict(compress_delta(state, merged, "lowrank", rank=args.rank)[0])
        engines[f"d{i}"] = model.eval()
    rng = np.random.default_rng(0)
    images = {d: rng.integers(0, 256, (2, args.size, args.size, 3), dtype=np.uint8) for d in engines}
    support = {
        d: to_tensor_batch(rng.integers(0, 256, (8, args.size, args.size, 3), dtype=np.uint8))
        for d in engines
    }
    router = build_router(base, support, block=0, mode="pooled", energy=0.95, max_rank=4)
    spec = ExportSpec(TASKS, args.size, args.size, "uint8")
    res: dict[str, object] = {
        "arch": args.arch,
        "size": args.size,
        "rank": args.rank,
        "domains": args.domains,
    }
    for layout, deltas in (("full", False), ("delta", True)):
        t0 = time.perf_counter()
        out = write_routed_bundle(
            args.out / layout, engines, router, base, spec, images, {}, deltas=deltas, rank_hint=args.rank
        )
        res[f"{layout}_build_s"] = round(time.perf_counter() - t0, 1)
        res[f"{layout}_bundle_mib"] = round(disk_bytes(out) / 2**20, 2)
        opens = []
        for _ in range(3):
            t0 = time.perf_counter()
            engine = load(out / "domains" / "d0", threads=2)
            opens.append(time.perf_counter() - t0)
            del engine
        res[f"{layout}_open_domain_s"] = round(float(np.median(opens)), 3)
        print(json.dumps(res), flush=True)
    (args.out / "delta_scale.json").write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()

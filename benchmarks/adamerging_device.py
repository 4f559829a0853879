"""AdaMerging-TAP on CPU and on a CUDA GPU with the same experts: learned coefficients, TAP, time.

    python benchmarks/adamerging_device.py --base B.safetensors --experts E1 E2 E3 [--iters 500]

Calibration images are rendered embedded scenes (the study's calib split seed); each head reads the
encoder's last block (the demo's linear heads). Prints one JSON line per device and the largest
coefficient difference.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from simokit.data import to_tensor_batch
from simokit.data.scenes import generate, split_seed
from simokit.merge.learned.coefficients import AdaMergingParams
from simokit.merge.learned.tap import learn_coefficients
from simokit.merge.inputs import load_inputs


def main() -> None:
    """Learn on each available device and compare."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", type=Path, required=True)
    ap.add_argument("--experts", type=Path, nargs="+", required=True)
    ap.add_argument("--iters", type=int, default=500)
    ap.add_argument("--images", type=int, default=128)
    ap.add_argument("--init", type=float, default=0.4)
    ap.add_argument("--workers", type=int, default=2, help="scene render processes")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False  # compare like with like
    torch.backends.cudnn.allow_tf32 = False
    inputs = load_inputs(args.base, list(args.experts))[0]
    scenes = generate(args.images, 112, seed=split_seed("calib") % 2**31, tasks=(), workers=args.workers)
    images = to_tensor_batch(np.asarray(scenes.image))
    depth = inputs.make_encoder(inputs.base_state).depth
    blocks = {t: [depth - 1] for t in inputs.expert_states}
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    runs = {}
    for base in ("sum", "ties"):
        params = AdaMergingParams(base=base, iters=args.iters, init=args.init)
        for device in devices:
            encoder = inputs.make_encoder(inputs.base_state)
            res = learn_coefficients(
                encoder, inputs.base_state, inputs.expert_states, blocks, images, params, device=device
            )
            runs[(base, device)] = res
            row = {
                "base": base,
                "device": device,
                "seconds": round(res.seconds, 2),
                "tap_before": res.tap_before,
                "tap_after": res.tap_after,
                "peak_gpu_mb": round(res.peak_gpu_mb),
                "mean_coef": round(float(np.mean(res.coefficients)), 4),
            }
            print(json.dumps(row), flush=True)
        if len(devices) == 2:
            diff = np.abs(
                np.array(runs[(base, "cuda")].coefficients) - np.array(runs[(base, "cpu")].coefficients)
            )
            speed = runs[(base, "cpu")].seconds / runs[(base, "cuda")].seconds
            print(
                json.dumps(
                    {"base": base, "max_coef_diff": float(diff.max()), "cuda_speedup": round(speed, 1)}
                )
            )
    if args.json:
        out = {f"{b}/{d}": vars(r) for (b, d), r in runs.items()}
        args.json.write_text(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()

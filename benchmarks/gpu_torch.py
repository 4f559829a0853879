"""PyTorch CUDA check for a lent GPU: one merged model vs the separate experts, and CUDA numerics.

The lent machines have CUDA and PyTorch but neither TensorRT nor onnxruntime-gpu (its wheels are
too large to carry there), so this is the GPU evidence we can get for "what does one engine save":
  1. agreement: a real merged checkpoint on CUDA (FP32, FP16 and BF16 autocast) against the CPU
     FP32 output on rendered scenes: seg label agreement, depth relative error, normal error;
  2. latency: random weights of real sizes (latency does not depend on the weights), the merged
     model (one encoder, every head) against the experts run one after another (one encoder
     each, distinct weights), batch 1 and 8, FP32 and FP16 (`.half()`), eager and CUDA graphs.
Times are p50 of CUDA-event-timed calls on normalised NCHW input (pre-processing excluded).

  python benchmarks/gpu_torch.py --checkpoint bundle/merged.safetensors --json out.json
  python benchmarks/gpu_torch.py --device cpu --archs vitmicro14 --iters 3   # smoke test
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from simokit.models import MultiTaskModel
from simokit.models.checkpoint import load_checkpoint, model_from_checkpoint
from simokit.profile.arch import merged_model

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def normalised(images: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float32, ImageNet-normalised as the bundles do."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    return (x - MEAN) / STD


def timed(fn: Callable[[], object], device: str, warmup: int, iters: int) -> float:
    """p50 milliseconds of fn(), each call timed on its own (CUDA events on a GPU)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append(1e3 * (time.perf_counter() - t0))
    return round(float(np.median(times)), 4)


def graphed(fn: Callable[[], object]) -> Callable[[], object]:
    """Capture fn (static input tensors) into a CUDA graph and return its replay."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph.replay


@torch.no_grad()
def agreement(checkpoint: Path, device: str, n: int) -> dict[str, Any]:
    """Merged checkpoint on `device` (fp32/fp16/bf16) against CPU fp32 on n rendered test scenes."""
    from simokit.data.scenes import generate, split_seed

    model = model_from_checkpoint(load_checkpoint(checkpoint)).eval()
    size = model.encoder.config.img_size
    scenes = generate(n, size, seed=split_seed("test") % (2**31), tasks=(), workers=1, progress=False)
    x = normalised(scenes.image)
    ref = {k: v.float() for k, v in model(x).items()}
    model = model.to(device)
    res: dict[str, Any] = {"checkpoint": str(checkpoint), "images": n, "size": size}
    for name, dtype in (("fp32", None), ("fp16", torch.float16), ("bf16", torch.bfloat16)):
        if dtype is None:
            out = model(x.to(device))
        else:
            with torch.autocast(device_type=device, dtype=dtype):
                out = model(x.to(device))
        out = {k: v.float().cpu() for k, v in out.items()}
        row: dict[str, float] = {}
        for task, y in out.items():
            r = ref[task]
            if task == "seg":
                same = (y.argmax(1) == r.argmax(1)).float().mean()
                row["seg_labels_equal_pct"] = round(100 * float(same), 3)
                row["seg_logit_max_abs"] = float((y - r).abs().max())
            elif task == "depth":
                rel = (y - r).abs() / r.abs().clamp_min(1e-6)
                row["depth_rel_err_mean_pct"] = round(100 * float(rel.mean()), 4)
            elif task == "normal":
                cos = (y * r).sum(1).clamp(-1, 1)
                angle = torch.rad2deg(torch.acos(cos))
                row["normal_angle_err_mean_deg"] = round(float(angle.mean()), 4)
                row["normal_angle_err_max_deg"] = round(float(angle.max()), 4)
            else:
                row[f"{task}_max_abs"] = float((y - r).abs().max())
        res[name] = row
    return res


@torch.no_grad()
def latency(
    arch: str, size: int, tasks: tuple[str, ...], device: str, batches: list[int], warmup: int, iters: int
) -> list[dict[str, Any]]:
    """Merged vs experts-in-turn, for each batch and precision, eager and (on CUDA) graphed."""
    rows = []
    merged = merged_model(arch, size, tasks)
    # each expert has its own encoder weights: three distinct copies, as on a robot running them apart
    experts = [MultiTaskModel(copy.deepcopy(merged.encoder), {t: merged.heads[t]}).eval() for t in tasks]
    for precision in ("fp32", "fp16") if device == "cuda" else ("fp32",):
        dtype = torch.float16 if precision == "fp16" else torch.float32
        m = merged.to(device, dtype)
        ex = [e.to(device, dtype) for e in experts]
        for batch in batches:
            x = torch.randn(batch, 3, size, size, device=device, dtype=dtype)
            calls = {
                "merged": lambda m=m, x=x: m(x),
                "experts": lambda ex=ex, x=x: [e(x) for e in ex],
            }
            row: dict[str, Any] = {"arch": arch, "size": size, "batch": batch, "precision": precision}
            for name, fn in calls.items():
                row[f"{name}_ms"] = timed(fn, device, warmup, iters)
                if device == "cuda":
                    try:
                        row[f"{name}_graph_ms"] = timed(graphed(fn), device, warmup, iters)
                    except RuntimeError as exc:  # a host sync inside capture: report it, keep timing
                        row[f"{name}_graph_error"] = str(exc).splitlines()[0][:200]
                        row[f"{name}_graph_ms"] = float("nan")
            row["speedup"] = round(row["experts_ms"] / row["merged_ms"], 2)
            if device == "cuda":
                row["speedup_graph"] = round(row["experts_graph_ms"] / row["merged_graph_ms"], 2)
            print(json.dumps(row), flush=True)
            rows.append(row)
        merged, experts = merged.float().cpu(), [e.float().cpu() for e in ex]
    if device == "cuda":
        torch.cuda.empty_cache()
    return rows


def main() -> None:
    """Run the agreement and latency checks and write one JSON report."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--checkpoint", type=Path, help="a merged checkpoint (bundle/merged.safetensors)")
    ap.add_argument("--images", type=int, default=16)
    sizes = "vitmicro14:112,vits14:224,vits14:448,vitb14:224,vitb14:448,vitl14:224"
    ap.add_argument("--archs", default=sizes, help="arch:size pairs")
    ap.add_argument("--tasks", default="seg,depth,normal")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--json", type=Path, default=Path("gpu_torch.json"))
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32: TF32 is a precision choice of its own
    torch.backends.cudnn.allow_tf32 = False
    report: dict[str, Any] = {"torch": torch.__version__, "device": args.device}
    if args.device == "cuda":
        report["gpu"] = torch.cuda.get_device_name(0)
    try:
        import onnxruntime as ort

        report["onnxruntime"] = {"version": ort.__version__, "providers": ort.get_available_providers()}
    except ImportError:
        report["onnxruntime"] = None
    if args.checkpoint:
        report["agreement"] = agreement(args.checkpoint, args.device, args.images)
        print(json.dumps(report["agreement"]), flush=True)
    tasks = tuple(args.tasks.split(","))
    batches = [int(b) for b in args.batches.split(",")]
    report["latency"] = []
    for item in args.archs.split(","):
        arch, size = item.split(":")
        report["latency"] += latency(arch, int(size), tasks, args.device, batches, args.warmup, args.iters)
        if args.device == "cuda":
            report.setdefault("peak_mem_mib", {})[item] = round(torch.cuda.max_memory_allocated() / 2**20)
            torch.cuda.reset_peak_memory_stats()
    args.json.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()

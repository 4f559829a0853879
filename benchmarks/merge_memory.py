"""Peak memory of the streaming merge vs an in-memory merge, on random ViT-B/14-sized experts.

Writes a base and N experts as simokit checkpoints (official vitb14 keys and shapes) to a temp
dir, then runs each measurement in a fresh subprocess and reports its peak RSS (ru_maxrss):
(a) `merge_files` streaming tensor by tensor, (b) loading all state dicts and `merge_state_dicts`.

    python benchmarks/merge_memory.py [--experts 3] [--methods sum ties]   # simokit installed or PYTHONPATH=.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ARCH = {"embed_dim": 768, "depth": 12, "mlp_dim": 3072, "patch_size": 14, "img_size": 518}


def vitb14_shapes(
    dim: int = 768, depth: int = 12, mlp: int = 3072, tokens: int = 1370
) -> dict[str, tuple[int, ...]]:
    """Official DINOv2 ViT-B/14 encoder keys and shapes (pos_embed for a 518-pixel input)."""
    shapes: dict[str, tuple[int, ...]] = {
        "cls_token": (1, 1, dim),
        "pos_embed": (1, tokens, dim),
        "mask_token": (1, dim),
        "patch_embed.proj.weight": (dim, 3, 14, 14),
        "patch_embed.proj.bias": (dim,),
    }
    for i in range(depth):
        p = f"blocks.{i}."
        shapes |= {p + n: (dim,) for n in ("norm1.weight", "norm1.bias", "ls1.gamma", "norm2.weight")}
        shapes |= {p + n: (dim,) for n in ("norm2.bias", "attn.proj.bias", "mlp.fc2.bias", "ls2.gamma")}
        shapes |= {p + "attn.qkv.weight": (3 * dim, dim), p + "attn.qkv.bias": (3 * dim,)}
        shapes |= {
            p + "attn.proj.weight": (dim, dim),
            p + "mlp.fc1.weight": (mlp, dim),
            p + "mlp.fc1.bias": (mlp,),
        }
        shapes[p + "mlp.fc2.weight"] = (dim, mlp)
    return shapes | {"norm.weight": (dim,), "norm.bias": (dim,)}


def write_checkpoints(folder: Path, experts: int) -> tuple[Path, list[Path]]:
    """Write base.safetensors and expert{t}.safetensors (base + 0.01·noise, one linear head each)."""
    import torch

    from simokit.models.checkpoint import CheckpointMeta, save_checkpoint

    g = torch.Generator().manual_seed(0)
    base = {k: torch.randn(s, generator=g) * 0.02 for k, s in vitb14_shapes().items()}
    base_path = save_checkpoint(folder / "base.safetensors", CheckpointMeta(kind="base", encoder=ARCH), base)
    paths = []
    for t in range(experts):
        encoder = {k: v + 0.01 * torch.randn(v.shape, generator=g) for k, v in base.items()}
        meta = CheckpointMeta(kind="expert", encoder=ARCH, heads={f"task{t}": {"kind": "linear"}})
        heads = {f"task{t}": {"weight": torch.randn(10, 768, generator=g), "bias": torch.zeros(10)}}
        paths.append(save_checkpoint(folder / f"expert{t}.safetensors", meta, encoder, heads))
        del encoder
    return base_path, paths


def child(mode: str, method: str, folder: Path) -> None:
    """Run one measurement in this process and print {"import_mb", "peak_mb", "seconds"} as JSON."""
    from simokit.merge import merge_files, merge_state_dicts
    from simokit.models.checkpoint import load_checkpoint

    start_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    base_path = folder / "base.safetensors"
    expert_paths = sorted(folder.glob("expert*.safetensors"))
    start = time.perf_counter()
    if mode == "stream":
        merge_files(base_path, expert_paths, method, folder / f"out_{method}.safetensors")
    else:
        base = load_checkpoint(base_path).encoder
        experts = [load_checkpoint(p).encoder for p in expert_paths]
        merge_state_dicts(base, experts, method)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"import_mb": start_rss / 1024, "peak_mb": peak / 1024, "seconds": seconds}))


def run_self(*args: str) -> str:
    """Run this script in a fresh interpreter and return its last stdout line."""
    # Linux keeps a process's peak RSS across exec, so children start from this lean parent (no torch,
    # no tensors); the checkpoints are written by a child as well.
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def main() -> None:
    """Create the checkpoints, measure every (method, mode) pair and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experts", type=int, default=3)
    parser.add_argument("--methods", nargs="+", default=["sum", "ties"])
    parser.add_argument("--child", nargs=3, metavar=("MODE", "METHOD", "DIR"), help=argparse.SUPPRESS)
    parser.add_argument("--write", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], Path(args.child[2]))
        return
    if args.write:
        write_checkpoints(Path(args.write), args.experts)
        print("done")
        return
    with tempfile.TemporaryDirectory(prefix="simokit-merge-bench-") as tmp:
        folder = Path(tmp)
        run_self("--write", tmp, "--experts", str(args.experts))
        size = sum(p.stat().st_size for p in folder.glob("*.safetensors")) / 2**20
        print(f"{args.experts} experts + base, ViT-B/14 encoders, {size:.0f} MiB of safetensors in total")
        print(f"{'method':<8}{'mode':<10}{'peak RSS MiB':>14}{'after import':>14}{'seconds':>10}")
        for method in args.methods:
            for mode in ("stream", "memory"):
                r = json.loads(run_self("--child", mode, method, tmp))
                print(
                    f"{method:<8}{mode:<10}{r['peak_mb']:>14.0f}{r['import_mb']:>14.0f}{r['seconds']:>10.1f}"
                )


if __name__ == "__main__":
    main()

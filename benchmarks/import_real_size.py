"""Imported experts at real size: ViT-S/14, B/14, L/14 at 518 px with DPT heads, random weights.

Per architecture it writes, in the source projects' own layouts, a DINOv2 backbone
(dinov2_<arch>_pretrain.pth) and three experts with DPT heads: an official DINOv2 DPT depth head on
the frozen backbone (depth), a SIMO checkpoint with a `dpt` segmentation decoder (150 classes) and a
Depth Anything V2 checkpoint (relative depth). The two fine-tuned encoders are the base plus noise.
Then each step runs in a fresh interpreter, started from this lean parent, so its peak RSS is its own:

  import   `simokit import` of the backbone and each expert (source file -> simokit checkpoint)
  merge    streaming task arithmetic of the three encoders (one tensor in memory at a time)
  realign  least-squares head re-alignment on N random 518 px images, folded into the heads
  export   the merged three-head graph and each expert's own graph to ONNX (verified against torch)
  profile  ONNX Runtime, batch 1: merged graph vs the three expert graphs run one after another, and
           the merged graph's time per head from ONNX Runtime's node profile

    PYTHONPATH=. python benchmarks/import_real_size.py [--archs vits14 vitb14 vitl14] [--images 4]

The source layouts are written with the test suite's writers (tests/models/importers), the same ones
the importer tests compare against the source formulas.
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
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SIZE = 518
ARCHS = {  # dim, depth, DINOv2/Depth Anything V2 blocks, Depth Anything V2 widths and features
    "vits14": (384, 12, [2, 5, 8, 11], [48, 96, 192, 384], 64),
    "vitb14": (768, 12, [2, 5, 8, 11], [96, 192, 384, 768], 128),
    "vitl14": (1024, 24, [4, 11, 17, 23], [256, 512, 1024, 1024], 256),
}
TASKS = ("seg", "depth", "relative_depth")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_sources(arch: str, folder: Path) -> None:
    """The backbone and the three experts in their source layouts."""
    import torch

    sys.path.insert(0, str(ROOT / "tests" / "models" / "importers"))
    from da_reference import official_head_state
    from dpt_reference import mmcv_dpt_state

    from simokit.models.vit import VARIANTS, build_encoder

    dim, _, blocks, widths, features = ARCHS[arch]
    torch.manual_seed(0)
    base = build_encoder(VARIANTS[arch]).state_dict()
    torch.save(base, folder / f"dinov2_{arch}_pretrain.pth")

    def tuned() -> dict[str, torch.Tensor]:
        return {k: v + 1e-3 * torch.randn_like(v) for k, v in base.items()}

    post = [dim // 2 ** (3 - i) for i in range(4)]
    head = mmcv_dpt_state(dim, post, 256, "project", "depth", prefix="decode_head.")
    torch.save({"state_dict": head}, folder / f"dinov2_{arch}_nyu_dpt_head.pth")
    seg = mmcv_dpt_state(dim, post, 256, "project", "seg", classes=150, prefix="decoders.seg.")
    args = {"arch_name": arch, "head_archs": "dpt", "out_index": blocks, "cls_token": True,
            "head_tasks": {"seg": {"num_classes": 150}}}  # fmt: skip
    state = {f"backbone.{k}": v for k, v in tuned().items()} | seg
    torch.save(
        {"model_class": "MTLDinoV2", "constructor_args": args, "state_dict": state}, folder / "simo_seg.pth"
    )
    da = {f"depth_head.{k}": v for k, v in official_head_state(dim, widths, features, False, False).items()}
    da |= {f"pretrained.{k}": v for k, v in tuned().items()}
    torch.save(da, folder / f"depth_anything_v2_{arch[3]}.pth")


def step_import(folder: Path, arch: str) -> dict[str, Any]:
    """`simokit import` of every source file, each timed (one process, peaks reported per file)."""
    from simokit.cli import main

    times = {}
    jobs = {
        "base": [f"dinov2_{arch}_pretrain.pth"],
        "depth": [f"dinov2_{arch}_nyu_dpt_head.pth"],
        "seg": ["simo_seg.pth"],
        "relative_depth": [f"depth_anything_v2_{arch[3]}.pth", "--format", "depth_anything_v2"],
    }
    for name, (src, *extra) in jobs.items():
        t0 = time.perf_counter()
        code = main(["import", str(folder / src), *extra, "--out", str(folder / f"{name}.safetensors")])
        if code != 0:
            raise SystemExit(f"import of {src} failed")
        times[name] = time.perf_counter() - t0
    return {"seconds": times}


def step_merge(folder: Path) -> dict[str, Any]:
    """Streaming task arithmetic (alpha 0.3) of the three experts' encoders."""
    from simokit.merge import merge_files

    experts = [folder / f"{t}.safetensors" for t in TASKS]
    t0 = time.perf_counter()
    merge_files(folder / "base.safetensors", experts, "sum", folder / "merged_encoder.safetensors", alpha=0.3)
    return {"seconds": time.perf_counter() - t0}


def step_realign(folder: Path, images: int) -> dict[str, Any]:
    """Head re-alignment of the merged encoder on random images; writes the folded heads."""
    import numpy as np
    import torch

    from simokit.data import SceneArrays
    from simokit.models.checkpoint import encoder_from_checkpoint, heads_from_checkpoint, load_checkpoint
    from simokit.realign.least_squares import fit_realignment

    experts = {t: load_checkpoint(folder / f"{t}.safetensors") for t in TASKS}
    encoders = {t: encoder_from_checkpoint(ck) for t, ck in experts.items()}
    heads = {t: heads_from_checkpoint(ck, encoders[t].embed_dim)[t] for t, ck in experts.items()}
    merged = _merged_encoder(folder)
    rng = np.random.default_rng(0)
    data = SceneArrays(
        image=rng.integers(0, 256, (images, SIZE, SIZE, 3), dtype=np.uint8), domain=np.zeros(images, np.uint8)
    )
    t0 = time.perf_counter()
    with torch.no_grad():
        result = fit_realignment(merged.eval(), encoders, heads, data, n_images=images, batch=1)
    seconds = time.perf_counter() - t0
    torch.save({t: h.state_dict() for t, h in result.heads.items()}, folder / "folded_heads.pt")
    return {"seconds": seconds, "images": images, "stats": result.stats}


def _merged_encoder(folder: Path) -> Any:
    """The streaming merge's encoder, built from the base's recorded architecture (no weights read twice)."""
    from safetensors.torch import load_file

    from simokit.models.checkpoint import read_checkpoint_meta
    from simokit.models.vit import VitConfig, build_encoder

    encoder = build_encoder(VitConfig.from_dict(read_checkpoint_meta(folder / "base.safetensors").encoder))
    merged = load_file(folder / "merged_encoder.safetensors")
    encoder.load_state_dict({k[len("encoder.") :]: v for k, v in merged.items()})
    return encoder.eval()


def _models(folder: Path) -> tuple[Any, dict[str, Any]]:
    """The merged three-head model (folded heads) and each expert alone."""
    import torch

    from simokit.models import MultiTaskModel
    from simokit.models.checkpoint import load_checkpoint, model_from_checkpoint

    experts = {t: model_from_checkpoint(load_checkpoint(folder / f"{t}.safetensors")) for t in TASKS}
    merged_encoder = _merged_encoder(folder)
    heads = {t: experts[t].heads[t] for t in TASKS}
    folded = torch.load(folder / "folded_heads.pt", weights_only=True)
    for t, head in heads.items():
        head.load_state_dict(folded[t])
    return MultiTaskModel(merged_encoder, heads).eval(), experts


def step_export(folder: Path) -> dict[str, Any]:
    """ONNX export (with simokit's torch-vs-ORT verification) of the merged graph and of each expert."""
    from simokit.export.onnx import ExportSpec, export_onnx

    merged, experts = _models(folder)
    seconds = {}
    t0 = time.perf_counter()
    export_onnx(merged, ExportSpec(TASKS, SIZE, SIZE, slim=False), folder / "merged.onnx")
    seconds["merged"] = time.perf_counter() - t0
    for t, model in experts.items():
        t0 = time.perf_counter()
        export_onnx(model, ExportSpec((t,), SIZE, SIZE, slim=False), folder / f"expert_{t}.onnx")
        seconds[t] = time.perf_counter() - t0
    sizes = {p.name: p.stat().st_size / 2**20 for p in folder.glob("*.onnx")}
    return {"seconds": seconds, "onnx_mib": sizes}


def _latency(path: Path, runs: int) -> float:
    import numpy as np

    from simokit.runtime.onnx_session import session_for

    sess = session_for(path, threads=2)
    feed = {
        sess.get_inputs()[0].name: np.random.default_rng(0).normal(size=(1, 3, SIZE, SIZE)).astype(np.float32)
    }
    sess.run(None, feed)  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, feed)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1000


def step_profile(folder: Path, runs: int) -> dict[str, Any]:
    """Batch-1 latency of the merged graph and of each expert graph; the merged graph's time per head."""
    merged_ms = _latency(folder / "merged.onnx", runs)
    experts_ms = {t: _latency(folder / f"expert_{t}.onnx", runs) for t in TASKS}
    return {
        "merged_ms": merged_ms,
        "experts_ms": experts_ms,
        "per_part_ms": _per_head(folder / "merged.onnx"),
    }


def _per_head(path: Path) -> dict[str, float]:
    """ONNX Runtime's node profile of one run, summed by the module the node came from."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.enable_profiling = True
    opts.profile_file_prefix = str(path.with_suffix(""))
    import numpy as np

    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: np.zeros((1, 3, SIZE, SIZE), np.float32)}
    sess.run(None, feed)
    sess.run(None, feed)
    events = json.loads(Path(sess.end_profiling()).read_text())
    runs: dict[str, float] = {}
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        name = e["name"]
        part = "encoder"
        for t in TASKS:
            if f"/model/{t}/" in name:  # the exporter names nodes after the module path
                part = t
        runs[part] = runs.get(part, 0.0) + e["dur"] / 1000 / 2  # two runs profiled
    return runs


def child(step: str, folder: Path, arch: str, n: int) -> None:
    """Run one step here and print its result with this process's peak RSS as the last line."""
    if step == "write":
        write_sources(arch, folder)
        result: dict[str, Any] = {}
    elif step == "import":
        result = step_import(folder, arch)
    elif step == "merge":
        result = step_merge(folder)
    elif step == "realign":
        result = step_realign(folder, n)
    elif step == "export":
        result = step_export(folder)
    else:
        result = step_profile(folder, n)
    print(json.dumps({**result, "peak_mb": _peak_mb()}))


def run_child(step: str, folder: Path, arch: str, n: int) -> dict[str, Any]:
    """One step in a fresh interpreter, started from this lean parent."""
    cmd = [sys.executable, __file__, "--child", step, str(folder), arch, str(n)]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"{arch} {step} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - t0
    print(f"  {arch} {step}: {result['wall_s']:.1f} s, peak RSS {result['peak_mb']:.0f} MiB", flush=True)
    return result


def main() -> None:
    """Every step for every architecture; prints a JSON summary (and writes it with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=list(ARCHS), choices=list(ARCHS))
    parser.add_argument("--images", type=int, default=4, help="re-alignment images (518 px)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per graph")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        step, folder, arch, n = args.child
        child(step, Path(folder), arch, int(n))
        return
    results: dict[str, Any] = {}
    for arch in args.archs:
        with tempfile.TemporaryDirectory(prefix=f"simokit-{arch}-") as tmp:
            folder = Path(tmp)
            results[arch] = {"write": run_child("write", folder, arch, 0)}
            results[arch]["source_mib"] = sum(p.stat().st_size for p in folder.glob("*.pth")) / 2**20
            results[arch]["import"] = run_child("import", folder, arch, 0)
            results[arch]["merge"] = run_child("merge", folder, arch, 0)
            results[arch]["realign"] = run_child("realign", folder, arch, args.images)
            results[arch]["export"] = run_child("export", folder, arch, 0)
            results[arch]["profile"] = run_child("profile", folder, arch, args.runs)
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

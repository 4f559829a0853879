"""Random-weight graphs of real sizes (latency does not depend on the weights) for `profile --arch`."""

from __future__ import annotations

from pathlib import Path

import torch

from simokit.export.onnx import ExportModule, ExportSpec, export_onnx
from simokit.models import HeadConfig, MultiTaskModel, build_encoder, build_head
from simokit.profile.flops import vit_flops
from simokit.runtime.timing import LatencyStats, time_calls
from simokit.tasks import get_task


def export_arch(
    arch: str, size: int, tasks: tuple[str, ...], out: Path, input_kind: str = "uint8"
) -> tuple[Path, dict[str, Path], float]:
    """Export the merged graph (one encoder, all heads) and one graph per expert; return paths and FLOPs."""
    model = merged_model(arch, size, tasks)
    encoder, heads = model.encoder, dict(model.heads)
    out.mkdir(parents=True, exist_ok=True)
    merged = export_onnx(
        MultiTaskModel(encoder, heads), ExportSpec(tasks, size, size, input_kind), out / "merged.onnx"
    )
    experts = {
        t: export_onnx(
            MultiTaskModel(encoder, {t: heads[t]}),
            ExportSpec((t,), size, size, input_kind),
            out / f"expert-{t}.onnx",
        )
        for t in tasks
    }
    flops = vit_flops(encoder.config.to_dict(), size, size, [get_task(t).out_channels for t in tasks])
    return merged, experts, flops


@torch.no_grad()
def time_torch_eager(
    arch: str, size: int, tasks: tuple[str, ...], batch: int = 1, warmup: int = 3, iters: int = 10
) -> LatencyStats:
    """p50 etc. of the same merged model in PyTorch eager (uint8 input, pre-processing included)."""
    module = ExportModule(merged_model(arch, size, tasks), ExportSpec(tasks, size, size, "uint8")).eval()
    x = torch.randint(0, 256, (batch, size, size, 3), dtype=torch.uint8)
    return time_calls(lambda: module(x), batch, warmup, iters)


def merged_model(arch: str, size: int, tasks: tuple[str, ...]) -> MultiTaskModel:
    """A seeded random-weight encoder of `arch` at `size` with one linear head per task, in eval mode."""
    torch.manual_seed(0)
    encoder = build_encoder(arch, img_size=size).eval()
    heads = {}
    for task in tasks:
        spec = get_task(task)
        cfg = HeadConfig("linear", spec.out_channels, spec.activation, batch_norm=True)
        heads[task] = build_head(cfg, encoder.embed_dim).eval()
    return MultiTaskModel(encoder, heads).eval()

"""Random-weight graphs of real sizes (latency does not depend on the weights) for `profile --arch`."""

from __future__ import annotations

from pathlib import Path

import torch

from simokit.export.onnx import ExportSpec, export_onnx
from simokit.models import HeadConfig, MultiTaskModel, build_encoder, build_head
from simokit.profile.flops import vit_flops
from simokit.tasks import get_task


def export_arch(
    arch: str, size: int, tasks: tuple[str, ...], out: Path, input_kind: str = "uint8"
) -> tuple[Path, dict[str, Path], float]:
    """Export the merged graph (one encoder, all heads) and one graph per expert; return paths and FLOPs."""
    torch.manual_seed(0)
    encoder = build_encoder(arch, img_size=size).eval()
    heads = {
        t: build_head(
            HeadConfig("linear", get_task(t).out_channels, get_task(t).activation, batch_norm=True),
            encoder.embed_dim,
        ).eval()
        for t in tasks
    }
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

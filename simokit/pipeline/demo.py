"""`simokit demo`: the whole pipeline on the embedded benchmark, from nothing to a report.

It renders the scenes, pre-trains the base, fine-tunes one expert per task, then merges them
(task arithmetic and TIES, hyper-parameters picked by evaluation and by TAP), re-aligns the merged
encoder to each head by least squares and reports everything on the held-out test split: the
paper's collapse-and-recovery picture on data made here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from simokit.cache import atomic_path
from simokit.data import PALETTE, SceneArrays, to_tensor_batch
from simokit.data.targets import channels_first
from simokit.export.onnx import ExportSpec
from simokit.models import MultiTaskModel
from simokit.pipeline.build import build_bundle
from simokit.pipeline.merging import MergeOutputs, merge_and_report
from simokit.pipeline.report import table
from simokit.recipe import PipelineConfig
from simokit.runtime.overlay import colour_of, panel, task_map
from simokit.train.pipeline import ensure_base, ensure_experts, load_data, load_encoder, load_model

DEPTH_RANGE = (0.5, 40.0)  # metres; fixed, so every model's depth column shares one colour scale


@dataclass
class DemoResult:
    """What the demo produced and how long each stage took."""

    merge: MergeOutputs
    report: Path
    figure: Path
    seconds: dict[str, float] = field(default_factory=dict)
    bundle: Path | None = None
    profile: dict[str, Any] = field(default_factory=dict)

    @property
    def table(self) -> str:
        """The merge table (experts, zero-shot, merges with and without re-alignment)."""
        return table(self.merge.result.rows, self.merge.result.expert_test)


def run_demo(cfg: PipelineConfig, out: Path, progress: bool = True) -> DemoResult:
    """Run the demo pipeline with `cfg`; write report.md, merge_report.md and figures under `out`."""
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    splits = load_data(cfg, progress, merge=True)
    seconds["data"] = time.perf_counter() - t0
    base = ensure_base(cfg, splits, progress)
    seconds["base"] = time.perf_counter() - t0 - sum(seconds.values())
    _, expert_paths = ensure_experts(cfg, splits, progress)
    seconds["experts"] = time.perf_counter() - t0 - sum(seconds.values())
    merged = merge_and_report(cfg.merge, base, expert_paths, splits, out, cfg.eval_batch, progress)
    seconds["merge"] = time.perf_counter() - t0 - sum(seconds.values())
    # the robot's bundle: camera frames in, labels/depth/normals at the frame's size out
    spec = ExportSpec(
        cfg.experts.tasks, cfg.data.size, cfg.data.size, input_kind="uint8", io="frame", seg_output="labels"
    )
    bundle, _ = build_bundle(out / "bundle", merged, base, expert_paths, splits, spec)
    seconds["build"] = time.perf_counter() - t0 - sum(seconds.values())
    profile = _profile(bundle, out)
    seconds["profile"] = time.perf_counter() - t0 - sum(seconds.values())
    experts = {t: load_model(p) for t, p in zip(cfg.experts.tasks, expert_paths, strict=True)}
    models = _figure_models(base, experts, merged)
    if splits.test is None:
        raise RuntimeError("load_data(merge=True) returned no test split")
    figure = write_figure(out / "predictions.png", splits.test, models)
    seconds["total"] = time.perf_counter() - t0
    result = DemoResult(merged, out / "report.md", figure, seconds, bundle, profile)
    write_report(result, cfg)
    return result


def _profile(bundle: Path, out: Path) -> dict[str, Any]:
    """A short latency profile of the bundle: merged graph vs the separate experts on ONNX Runtime."""
    from simokit.profile.compare import bundle_graphs, profile_graphs, write_outputs

    merged, experts, flops = bundle_graphs(bundle)
    result = profile_graphs(merged, experts, flops, (1, 8), iters=15)
    write_outputs(result, out / "profile.json", out / "profile.png")
    return result


def _figure_models(
    base: Path, experts: dict[str, MultiTaskModel], merged: MergeOutputs
) -> dict[str, MultiTaskModel]:
    heads = {t: m.heads[t] for t, m in experts.items()}
    encoder, _ = load_encoder(base)
    selected = merged.result.selected
    if selected is None:
        raise RuntimeError("the merge selected no model")
    return {
        "zero-shot": MultiTaskModel(encoder, heads).eval(),
        "merged": MultiTaskModel(selected.encoder, heads).eval(),
        "merged + re-align": selected,
    }


def write_report(result: DemoResult, cfg: PipelineConfig) -> Path:
    """Write the demo's markdown report atomically."""
    import yaml

    from simokit.config import to_dict
    from simokit.profile.compare import table as profile_table

    times = ", ".join(f"{k} {v:.0f} s" for k, v in result.seconds.items())
    text = (
        "# simokit demo\n\n"
        f"Embedded benchmark: {cfg.data.test} held-out test scenes at {cfg.data.size}px "
        f"({', '.join(cfg.data.domains)}), encoder `{cfg.base.encoder}`, experts: "
        f"{', '.join(cfg.experts.tasks)}.\n\n"
        f"{result.table}\n\n"
        "Normalised score: each metric relative to its expert (1.0 = expert), averaged per task and "
        f"over tasks. Details, selection and plots: [merge_report.md]({result.merge.report.name}).\n\n"
        f"Columns per task: ground truth, expert, zero-shot, merged, merged + re-align.\n\n"
        f"![predictions]({result.figure.name})\n\n"
        f"## Deployment\n\nBundle: `{result.bundle}` (one ONNX graph that takes uint8 BGR camera frames "
        "of any size and returns outputs at the frame's size, verified against torch).\n\n"
        f"{profile_table(result.profile)}\n\n![latency](profile.png)\n\n"
        f"Wall time: {times}\n\n## Recipe\n\n"
        f"```yaml\n{yaml.safe_dump(to_dict(cfg), sort_keys=False)}```\n"
    )
    with atomic_path(result.report) as tmp:
        tmp.write_text(text)
    return result.report


@torch.no_grad()
def write_figure(path: Path, data: SceneArrays, models: dict[str, MultiTaskModel], n: int = 4) -> Path:
    """Save a grid: per scene, the image, then ground truth, expert and each model per task."""
    import cv2

    idx = np.arange(min(n, len(data)))
    images = np.asarray(data.image[idx])
    x = to_tensor_batch(images)
    outputs = {name: {t: v.numpy() for t, v in m(x).items()} for name, m in models.items()}
    tasks = list(next(iter(outputs.values())))
    rows = []
    for i in idx:
        row = [images[i]]
        for task in tasks:
            gt = np.asarray(getattr(data, task)[i])
            row.append(_picture(task, gt, channels_last=True))
            row += [_picture(task, outputs[name][task][i]) for name in models]
        rows.append(row)
    grid = panel(rows)
    with atomic_path(path) as tmp:
        ok, buf = cv2.imencode(".png", cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
        if not ok:
            raise OSError(f"could not encode {path.name} as PNG")
        tmp.write_bytes(buf.tobytes())
    return path


def _picture(task: str, value: np.ndarray, channels_last: bool = False) -> np.ndarray:
    """One image's output (C, H, W), or its stored target when `channels_last`, drawn by its colouriser."""
    if channels_last:
        value = channels_first(task, value[None])[0]
    colouriser = colour_of(task)
    return colouriser.draw(task_map(colouriser, value), PALETTE, DEPTH_RANGE)

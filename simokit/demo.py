"""`simokit demo`: the whole pipeline on the embedded benchmark, from nothing to a report.

This first version renders the scenes, pre-trains the base, fine-tunes one expert per task and
compares each expert with the zero-shot model (base encoder + the experts' heads), the lower
bound every merge has to beat.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from simokit.cache import atomic_path
from simokit.data import PALETTE
from simokit.models import MultiTaskModel
from simokit.runtime.overlay import colorize_depth, colorize_seg, gray_to_rgb, normals_to_rgb, panel
from simokit.tasks.evaluate import evaluate
from simokit.tasks.score import Metrics, normalized_score, task_scores
from simokit.train.config import PipelineConfig
from simokit.train.pipeline import Splits, ensure_base, ensure_expert, load_data, load_encoder, load_model


@dataclass
class DemoResult:
    """Metrics of each row of the demo table and where its files went."""

    rows: dict[str, Metrics]
    experts: Metrics
    report: Path
    figure: Path
    seconds: float


def zeroshot_model(base_path: Path, experts: dict[str, MultiTaskModel]) -> MultiTaskModel:
    """Base encoder with every expert's head: what merging with alpha = 0 gives."""
    encoder, _ = load_encoder(base_path)
    return MultiTaskModel(encoder, {t: m.heads[t] for t, m in experts.items()})


def run_demo(cfg: PipelineConfig, out: Path, progress: bool = True) -> DemoResult:
    """Run the demo pipeline with `cfg`, write report.md and predictions.png under `out`."""
    t0 = time.perf_counter()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    splits = load_data(cfg, progress)
    base = ensure_base(cfg, splits, progress)
    tasks = cfg.experts.tasks
    experts = {t: load_model(ensure_expert(cfg, t, splits, progress)) for t in tasks}
    expert_metrics: Metrics = {}
    for task, model in experts.items():
        expert_metrics.update(evaluate(model, splits.val, (task,), cfg.eval_batch))
    zeroshot = zeroshot_model(base, experts)
    rows = {"experts": expert_metrics, "zeroshot": evaluate(zeroshot, splits.val, tasks, cfg.eval_batch)}
    out.mkdir(parents=True, exist_ok=True)
    figure = write_figure(out / "predictions.png", splits, experts, zeroshot)
    seconds = time.perf_counter() - t0
    report = write_report(out / "report.md", cfg, rows, expert_metrics, seconds, figure.name)
    return DemoResult(rows, expert_metrics, report, figure, seconds)


def format_table(rows: dict[str, Metrics], experts: Metrics) -> str:
    """Markdown table: one row per model, primary metrics per task, normalised score."""
    from simokit.tasks import get_task

    tasks = list(experts)
    header = ["model"]
    for t in tasks:
        header += [f"{t} {m}" for m in get_task(t).metrics]
    header += ["norm. score"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, metrics in rows.items():
        cells = [name]
        for t in tasks:
            cells += [
                f"{metrics[t][m]:.3f}" if m.endswith(("err", "rel")) else f"{metrics[t][m]:.2f}"
                for m in get_task(t).metrics
            ]
        per_task = task_scores(metrics, experts)
        cells.append(
            f"{normalized_score(metrics, experts):.3f} ("
            + ", ".join(f"{t} {s:.2f}" for t, s in per_task.items())
            + ")"
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(
    path: Path, cfg: PipelineConfig, rows: dict[str, Metrics], experts: Metrics, seconds: float, figure: str
) -> Path:
    """Write the demo's markdown report atomically."""
    import yaml

    from simokit.config import to_dict

    text = (
        "# simokit demo\n\n"
        f"Embedded benchmark: {cfg.data.val} validation scenes at {cfg.data.size}px "
        f"({', '.join(cfg.data.domains)}), encoder `{cfg.base.encoder}`.\n\n"
        + format_table(rows, experts)
        + "\n\nNormalised score: each metric relative to its expert (1.0 = expert), averaged per task "
        "and over tasks.\n\n"
        f"![predictions]({figure})\n\n"
        f"Wall time: {seconds:.1f} s\n\n## Recipe\n\n"
        f"```yaml\n{yaml.safe_dump(to_dict(cfg), sort_keys=False)}```\n"
    )
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


@torch.no_grad()
def write_figure(
    path: Path, splits: Splits, experts: dict[str, MultiTaskModel], zeroshot: MultiTaskModel, n: int = 4
) -> Path:
    """Save a grid: per scene, the image, then ground truth / expert / zero-shot for each task."""
    import cv2

    from simokit.data import to_tensor_batch

    idx = np.arange(min(n, len(splits.val)))
    images = np.asarray(splits.val.image[idx])
    x = to_tensor_batch(images)
    expert_out = {t: m(x)[t].numpy() for t, m in experts.items()}
    zs_out = {t: v.numpy() for t, v in zeroshot(x).items()}
    rows = []
    for i in idx:
        row = [images[i]]
        for task in experts:
            gt = np.asarray(getattr(splits.val, task)[i])
            row += [
                _picture(task, gt, channels_last=True),
                _picture(task, expert_out[task][i]),
                _picture(task, zs_out[task][i]),
            ]
        rows.append(row)
    grid = panel(rows)
    with atomic_path(path) as tmp:
        ok, buf = cv2.imencode(".png", cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
        if not ok:
            raise OSError(f"could not encode {path.name} as PNG")
        tmp.write_bytes(buf.tobytes())
    return path


def _picture(task: str, value: np.ndarray, channels_last: bool = False) -> np.ndarray:
    if task == "seg":
        labels = value if channels_last else value.argmax(axis=0)
        return colorize_seg(labels, PALETTE)
    if task == "depth":
        return colorize_depth(value if channels_last else value[0], vmin=0.5, vmax=40.0)
    if task == "normal":
        return normals_to_rgb(value)
    return gray_to_rgb(value if channels_last else value[0])

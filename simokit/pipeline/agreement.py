"""Label-free scores on held-out frames: how closely a merged model agrees with each expert.

Each expert's own predictions on the held-out frames become the pseudo-targets of its task (seg: the
expert's labels; depth: its metres; normals: its unit vectors), so the ordinary evaluator measures
agreement: seg pix_acc is the % of pixels with the expert's label and miou the mIoU against its
labels, depth abs_rel the mean relative difference, relative_depth abs_rel the same after a per-image
scale-and-shift fit to the expert's map, normal mean_angle the mean angle between them.
Each task's agreement metrics are normalised as (m - m_zeroshot) / (m_expert - m_zeroshot): 1.0 = the
expert itself, 0 = the zero-shot model (base encoder with the experts' heads).
"""

from __future__ import annotations

import numpy as np
import torch

from simokit.data import SceneArrays, to_tensor_batch
from simokit.device import on_device, resolve_device
from simokit.merge.inputs import Inputs
from simokit.models import MultiTaskModel
from simokit.pipeline.report import format_hparams
from simokit.pipeline.study_result import Row
from simokit.tasks import get_task
from simokit.tasks.score import Metrics
from simokit.tasks.spec import OutputKind

# the agreement metrics reported and normalised per task
AGREEMENT: dict[str, tuple[str, ...]] = {
    "seg": ("pix_acc", "miou"),
    "depth": ("abs_rel",),
    "relative_depth": ("abs_rel",),
    "normal": ("mean_angle",),
    "edge": ("l1",),
    "shading": ("l1",),
}


@torch.no_grad()
def predict(
    model: MultiTaskModel, images: np.ndarray, batch: int = 16, device: str = "cpu"
) -> dict[str, np.ndarray]:
    """Every head's output on uint8 RGB `images`, in the stored target layout (labels, (N,H,W[,3]))."""
    dev = resolve_device(device)
    net = on_device(model, dev).eval()
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(images), batch):
        out = net(to_tensor_batch(np.asarray(images[start : start + batch])).to(dev))
        for task, value in out.items():
            v = value.float().cpu().numpy()
            if get_task(task).output == OutputKind.LOGITS:
                v = v.argmax(1).astype(np.uint8)
            elif v.shape[1] == 1:
                v = v[:, 0]
            else:
                v = np.moveaxis(v, 1, -1)
            parts.setdefault(task, []).append(np.ascontiguousarray(v, dtype=v.dtype))
    return {t: np.concatenate(v) for t, v in parts.items()}


def expert_model(inputs: Inputs, task: str) -> MultiTaskModel:
    """The `task` expert alone: its encoder and its head."""
    return MultiTaskModel(inputs.make_encoder(inputs.expert_states[task]), {task: inputs.heads[task]}).eval()


def pseudo_targets(inputs: Inputs, held: SceneArrays, batch: int = 16, device: str = "cpu") -> SceneArrays:
    """The held-out images with each expert's predictions as its task's targets."""
    targets = {t: predict(expert_model(inputs, t), held.image, batch, device)[t] for t in inputs.tasks}
    return SceneArrays(image=held.image, domain=held.domain, **targets)


def agreement_score(value: float, zeroshot: float, expert: float) -> float:
    """(value - zeroshot) / (expert - zeroshot); 1.0 when the zero-shot model already equals the expert."""
    span = expert - zeroshot
    if abs(span) < 1e-9:
        return 1.0
    return (value - zeroshot) / span


def task_agreement(metrics: Metrics, zeroshot: Metrics, expert: Metrics) -> dict[str, float]:
    """Each task's normalised agreement: the mean of agreement_score over its AGREEMENT metrics."""
    out = {}
    for task in metrics:
        names = AGREEMENT.get(task, (get_task(task).primary,))
        scores = [agreement_score(metrics[task][m], zeroshot[task][m], expert[task][m]) for m in names]
        out[task] = sum(scores) / len(scores)
    return out


def mean_agreement(metrics: Metrics, zeroshot: Metrics, expert: Metrics) -> float:
    """The mean over tasks of task_agreement."""
    scores = task_agreement(metrics, zeroshot, expert)
    return sum(scores.values()) / max(len(scores), 1)


def agreement_table(rows: list[Row], expert: Metrics) -> str:
    """Markdown table, one row per model: agreement metrics, per-task and mean normalised agreement."""
    zeroshot = next(r.metrics for r in rows if r.method == "zeroshot")
    tasks = list(expert)
    header = ["model", "hyper-parameters"]
    header += [f"{t} {m}" for t in tasks for m in AGREEMENT.get(t, (get_task(t).primary,))]
    header += [f"{t} norm." for t in tasks] + ["mean norm."]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    named = [Row("experts", "-", {}, "-", "-", expert, 1.0), *rows]
    for row in named:
        cells = [row.name, format_hparams(row.hparams)]
        cells += [
            f"{row.metrics[t][m]:.3f}" if m == "abs_rel" else f"{row.metrics[t][m]:.2f}"
            for t in tasks
            for m in AGREEMENT.get(t, (get_task(t).primary,))
        ]
        per_task = task_agreement(row.metrics, zeroshot, expert)
        mean = sum(per_task.values()) / len(per_task)
        cells += [f"{per_task[t]:.3f}" for t in tasks] + [f"**{mean:.3f}**"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)

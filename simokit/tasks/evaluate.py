"""Evaluate a multi-task model on stacked arrays (embedded scenes or a real-data folder)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from simokit.data import SceneArrays, targets_to_tensors, to_tensor_batch
from simokit.device import on_device, resolve_device
from simokit.tasks.metrics import make_metric
from simokit.tasks.score import Metrics


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: SceneArrays,
    tasks: tuple[str, ...],
    batch_size: int = 64,
    num_classes: int | None = None,
    progress: bool = False,
    device: str = "cpu",
) -> Metrics:
    """Run `model` ((B, 3, H, W) -> {task: (B, C, H, W)}) over `data` on `device`; metrics per task."""
    dev = resolve_device(device)
    model = on_device(model, dev)
    model.eval()
    metrics = {t: make_metric(t, num_classes) for t in tasks}
    starts = range(0, len(data), batch_size)
    for start in tqdm(starts, desc="evaluate", disable=not progress, leave=False):
        idx = np.arange(start, min(start + batch_size, len(data)))
        outputs = model(to_tensor_batch(np.asarray(data.image[idx])).to(dev))
        targets = targets_to_tensors({t: np.asarray(getattr(data, t)[idx]) for t in tasks})
        for task in tasks:
            metrics[task].update(outputs[task].float().cpu().numpy(), targets[task].numpy())
    return {t: m.compute() for t, m in metrics.items()}

"""Two-stage expert fine-tuning as in the SIMO paper.

Stage 1 trains a freshly initialised head on the frozen base encoder (linear probing); stage 2
fine-tunes head and encoder together. Stage 2's learning rate and length set how far the expert
drifts from the base, which is what makes naive merging misalign.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import Tensor

from simokit.data import SceneArrays
from simokit.models import DinoVisionTransformer, HeadConfig, MultiTaskModel, build_head
from simokit.models.heads import DenseHead
from simokit.recipe import ExpertConfig
from simokit.tasks import get_task
from simokit.tasks.losses import task_loss
from simokit.train.loop import batches, run_stage


def head_config(task: str, cfg: ExpertConfig) -> HeadConfig:
    """The head configuration an expert for `task` is trained with."""
    spec = get_task(task)
    return HeadConfig(
        kind=cfg.head.kind,
        out_channels=spec.out_channels,
        activation=spec.activation,
        layers=cfg.head.layers,
        use_cls=cfg.head.use_cls,
        batch_norm=cfg.head.batch_norm,
    )


@torch.no_grad()
def init_output_bias(head: DenseHead, task: str, data: SceneArrays) -> None:
    """Start a depth head as the data's median depth, so training fits the shape, not the scale.

    Adam moves a bias by about lr per step; from 0 it would need thousands of steps to reach
    log(10 m), and the head would spend stage 1 learning a constant.
    """
    if task != "depth" or get_task(task).activation != "exp" or data.depth is None:
        return
    sample = np.asarray(data.depth[: min(len(data), 256)])
    valid = sample[sample > 0]
    if valid.size == 0:
        return
    last = head.output_layer()
    # Zero weights: the head starts as the constant median depth instead of exp(random) noise.
    last.weight.zero_()
    if last.bias is not None:
        last.bias.fill_(float(np.log(np.median(valid))))


def train_expert(
    task: str, base: DinoVisionTransformer, cfg: ExpertConfig, data: SceneArrays, progress: bool = True
) -> tuple[MultiTaskModel, dict[str, list[float]]]:
    """Fine-tune a copy of `base` with a new `task` head; returns the expert and both loss histories."""
    seed = cfg.seed + sum(task.encode())
    torch.manual_seed(seed)
    encoder = copy.deepcopy(base)
    head = build_head(head_config(task, cfg), encoder.embed_dim)
    init_output_bias(head, task, data)
    model = MultiTaskModel(encoder, {task: head})
    stream = batches(data, cfg.batch, (task,), seed)

    def step(_: int) -> Tensor:
        images, targets = next(stream)
        pred = model(images)[task]
        return task_loss(task, pred, targets[task])

    encoder.requires_grad_(False)
    encoder.eval()
    head.train()
    stage1 = run_stage(head.parameters(), cfg.stage1, step, f"{task}: stage 1 (head)", progress)
    encoder.requires_grad_(True)
    encoder.train()
    stage2 = run_stage(model.parameters(), cfg.stage2, step, f"{task}: stage 2 (joint)", progress)
    model.eval()
    return model, {"stage1": stage1, "stage2": stage2}

"""Load a base and its experts from checkpoints into what a merge study needs, refusing mismatches."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from simokit.errors import CheckpointError
from simokit.models import DinoVisionTransformer, VitConfig, build_encoder
from simokit.models.checkpoint import Checkpoint, check_compatible, heads_from_checkpoint
from simokit.models.heads import DenseHead
from simokit.models.importers import load_any

EncoderFactory = Callable[[dict[str, torch.Tensor]], DinoVisionTransformer]


@dataclass
class Inputs:
    """Everything a study needs: the base and expert encoders (state dicts and modules) and heads."""

    base_state: dict[str, torch.Tensor]
    expert_states: dict[str, dict[str, torch.Tensor]]
    heads: dict[str, DenseHead]
    make_encoder: EncoderFactory
    num_classes: int

    @property
    def tasks(self) -> tuple[str, ...]:
        """Task names in expert order."""
        return tuple(self.expert_states)


def load_inputs(base_path: str | Path, expert_paths: list[str | Path]) -> tuple[Inputs, list[Checkpoint]]:
    """Read the base and expert checkpoints, check they share base and architecture, build heads."""
    # simokit checkpoints load as they are; any importable format is converted in memory
    base = load_any(base_path)
    experts = [load_any(p) for p in expert_paths]
    check_compatible(experts, base)
    tasks = [ck.meta.tasks[0] for ck in experts]
    dupes = sorted({t for t in tasks if tasks.count(t) > 1})
    if dupes:
        raise CheckpointError(f"several experts for task(s) {', '.join(dupes)}; give one expert per task")
    vit = VitConfig.from_dict(base.meta.encoder)

    def make_encoder(state: dict[str, torch.Tensor]) -> DinoVisionTransformer:
        enc = build_encoder(vit)
        enc.load_state_dict(state, strict=True)
        return enc.eval()

    heads: dict[str, DenseHead] = {}
    for ck, task in zip(experts, tasks, strict=True):
        heads[task] = heads_from_checkpoint(ck, vit.embed_dim)[task]
    num_classes = len(experts[tasks.index("seg")].meta.classes) if "seg" in tasks else 0
    inputs = Inputs(
        base_state=base.encoder,
        expert_states={t: ck.encoder for t, ck in zip(tasks, experts, strict=True)},
        heads=heads,
        make_encoder=make_encoder,
        num_classes=num_classes or 1,
    )
    return inputs, [base, *experts]

"""Write an ImportedModel as a simokit checkpoint (expert with one head, or base)."""

from __future__ import annotations

from pathlib import Path

from simokit.models.checkpoint import CheckpointMeta, save_checkpoint
from simokit.models.importers.model import ImportedModel


def imported_meta(model: ImportedModel) -> CheckpointMeta:
    """The checkpoint metadata of an imported model; the source's details go under extra["import"]."""
    heads = {model.task: model.head.to_dict()} if model.head is not None and model.task else {}
    return CheckpointMeta(
        kind="expert" if heads else "base",
        encoder=model.vit.to_dict(),
        heads=heads,
        classes=model.classes,
        input_size=model.input_size,
        mean=model.mean,
        std=model.std,
        base_hash=model.base_hash,
        extra={"import": {"format": model.format, **model.details}},
    )


def save_imported(model: ImportedModel, out: str | Path) -> Path:
    """Write `model` to `out` (.safetensors) atomically; returns the path."""
    meta = imported_meta(model)
    heads = {model.task: model.head_state} if meta.heads and model.task else {}
    return save_checkpoint(out, meta, model.encoder, heads)

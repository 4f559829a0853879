"""Find a file's format and convert it: detection asks each registered format in registration order."""

from __future__ import annotations

import dataclasses
import functools
import re
from pathlib import Path

from simokit.errors import CheckpointError, ConfigError
from simokit.models.checkpoint import (
    Checkpoint,
    CheckpointMeta,
    is_simokit_checkpoint,
    load_checkpoint,
    read_checkpoint_meta,
)
from simokit.models.importers.model import ImportedModel
from simokit.models.importers.registry import IMPORTERS, Importer
from simokit.models.importers.source import Source, read_source
from simokit.models.importers.writer import imported_meta


def _load_formats() -> None:
    # Format modules register on import; importing them here keeps the table complete for callers.
    import simokit.models.importers.formats  # noqa: F401


def known_formats() -> list[str]:
    """Names of every registered format."""
    _load_formats()
    return list(IMPORTERS)


def detect(source: Source, fmt: str | None = None) -> Importer:
    """The importer for `source`: `fmt` when given (checked), else the first format that recognises it."""
    _load_formats()
    if fmt is not None:
        if fmt not in IMPORTERS:
            raise ConfigError(f"unknown format '{fmt}'; choose from {', '.join(IMPORTERS)}")
        return IMPORTERS[fmt]
    for importer in IMPORTERS.values():
        if importer.detect(source):
            return importer
    keys = source.top_keys()
    shown = ", ".join(keys[:8]) + (f" (+{len(keys) - 8} more)" if len(keys) > 8 else "")
    raise CheckpointError(
        f"{source.path}: no known format (top-level keys: {shown}); known formats: {', '.join(IMPORTERS)}"
    )


def read_base(path: str | Path) -> ImportedModel:
    """The bare encoder in `path` (the backbone a head file is paired with); a file with a head is refused."""
    models = read_models(path)
    if len(models) != 1 or models[0].is_expert:
        raise ConfigError(
            f"{path} holds a task head; a backbone must be a bare encoder (e.g. dinov2_vits14_pretrain.pth)"
        )
    models[0].details["path"] = str(path)
    return models[0]


def read_models(
    path: str | Path, fmt: str | None = None, backbone: str | Path | None = None
) -> list[ImportedModel]:
    """Every model in the file at `path`, converted to simokit's layouts.

    `backbone` is the encoder file for formats whose files hold only a head (their importer sets
    `takes_backbone = True`); other formats carry their own encoder and refuse one.
    """
    source = read_source(path)
    return convert_source(source, detect(source, fmt), backbone)


def convert_source(
    source: Source, importer: Importer, backbone: str | Path | None = None
) -> list[ImportedModel]:
    """`importer`'s models of `source`, a head-only file paired with `backbone` or the hub's sibling file."""
    takes_backbone = getattr(importer, "takes_backbone", False)
    if backbone is None and takes_backbone:
        backbone = _sibling_backbone(source.path)
    if backbone is not None:
        if not takes_backbone:
            raise ConfigError(
                f"{source.path} is a '{importer.name}' file with its own encoder; "
                f"drop the backbone {backbone}"
            )
        source.backbone = read_base(backbone)
    return importer.convert(source)


def import_model(
    path: str | Path,
    task: str | None = None,
    fmt: str | None = None,
    backbone: str | Path | None = None,
) -> ImportedModel:
    """The one model of `path` for `task` (needed when the file holds several task heads).

    `backbone` pairs a head-only file (official DINOv2 dense heads) with its encoder file. A head
    whose task the file does not record takes `task`; without it, that is an error.
    """
    models = read_models(path, fmt, backbone)
    unnamed = {id(m) for m in models if m.is_expert and not m.task}
    if unnamed and task is None:
        raise ConfigError(
            f"{path}: the task of its {models[0].format} head cannot be inferred from the file; "
            "name it with --task (seg, depth, normal or relative_depth)"
        )
    models = [dataclasses.replace(m, task=task) if id(m) in unnamed else m for m in models]
    if task is not None:
        matching = [m for m in models if m.task == task]
        if not matching:
            have = ", ".join(str(m.task) for m in models if m.task) or "none (a base encoder)"
            raise ConfigError(f"{path} has no '{task}' head; its tasks: {have}")
        return matching[0]
    if len(models) > 1:
        tasks = ", ".join(str(m.task) for m in models)
        raise ConfigError(f"{path} holds heads for {tasks}; pick one with --task")
    return models[0]


_HUB_HEAD = re.compile(r"^(dinov2_vit[sblg]14(?:_reg4)?)_")


def _sibling_backbone(path: Path) -> Path | None:
    """The hub's backbone file beside an official head file (dinov2_vits14_nyu_dpt_head.pth ->
    dinov2_vits14_pretrain.pth), when it is there."""
    match = _HUB_HEAD.match(path.name)
    sibling = path.with_name(f"{match.group(1)}_pretrain.pth") if match else None
    return sibling if sibling is not None and sibling.is_file() else None


def load_any(path: str | Path, task: str | None = None, fmt: str | None = None) -> Checkpoint:
    """A simokit checkpoint as is, or any importable file converted in memory (nothing is written)."""
    path = Path(path)
    if fmt is None and is_simokit_checkpoint(path):
        return load_checkpoint(path)
    model = import_model(path, task, fmt)
    meta = imported_meta(model)
    heads = {model.task: model.head_state} if meta.heads and model.task else {}
    return Checkpoint(path, meta, model.encoder, heads)


def _stamp(path: Path) -> tuple[tuple[str, int, int], ...]:
    """Names, sizes and modification times of a file or a folder's files: what identifies its content."""
    files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
    return tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)


@functools.lru_cache(maxsize=64)
def _imported_meta(path: str, stamp: tuple[tuple[str, int, int], ...]) -> CheckpointMeta:
    # `stamp` is part of the key only: a file changed on disk is imported again
    return imported_meta(import_model(path))


def load_meta(path: str | Path) -> CheckpointMeta:
    """What a checkpoint holds (kind, tasks, encoder, input size) without keeping its tensors.

    A simokit checkpoint's header is read alone; another format is imported once per process and
    file version, so asking for the tasks and size before a merge does not read every file again.
    """
    path = Path(path)
    if is_simokit_checkpoint(path):
        return read_checkpoint_meta(path)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist; check the path")
    return _imported_meta(str(path.resolve()), _stamp(path))

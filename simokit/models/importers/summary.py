"""What `simokit inspect SRC` prints for a checkpoint file or Hugging Face folder."""

from __future__ import annotations

import json
from pathlib import Path

from simokit.models.importers.lookup import convert_source, detect
from simokit.models.importers.model import ImportedModel
from simokit.models.importers.source import read_source

_SHOWN_CLASSES = 12


def _encoder_line(model: ImportedModel) -> str:
    vit = model.vit
    variant = model.details.get("variant", "custom")
    return (
        f"encoder: {variant}: dim {vit.embed_dim}, depth {vit.depth}, heads {vit.num_heads}, "
        f"patch {vit.patch_size}, registers {vit.num_register_tokens}, ffn {vit.ffn}; "
        f"input {model.input_size[0]}x{model.input_size[1]}, mean {model.mean}, std {model.std}"
    )


def _model_lines(index: int, model: ImportedModel) -> list[str]:
    if model.head is None:
        return [f"model {index}: base encoder (no task head)"]
    head = model.head
    classes = ", ".join(model.classes[:_SHOWN_CLASSES]) + (
        " ..." if len(model.classes) > _SHOWN_CLASSES else ""
    )
    lines = [
        f"model {index}: task {model.task or '? (name it with --task)'}, head {head.kind}, "
        f"blocks read {list(head.layers)}, features {'after' if head.norm else 'before'} the final norm, "
        f"CLS {'used' if head.use_cls else 'not used'}, outputs {head.out_channels}, "
        f"activation {head.activation}",
    ]
    if model.classes:
        lines.append(f"  classes ({len(model.classes)}): {classes}")
    if head.options:
        lines.append(f"  options: {json.dumps(head.options, default=str)}")
    return lines


def describe_source(path: str | Path, fmt: str | None = None, backbone: str | Path | None = None) -> str:
    """Detected format, encoder variant and every model's head, read from a checkpoint or HF folder.

    A head-only file is paired with `backbone`, else with the hub's backbone file beside it.
    """
    source = read_source(path)
    importer = detect(source, fmt)
    models = convert_source(source, importer, backbone)
    lines = [f"source: {path}", f"format: {importer.name} ({importer.description})", _encoder_line(models[0])]
    for index, model in enumerate(models, start=1):
        lines += _model_lines(index, model)
    details = {k: v for m in models for k, v in m.details.items() if k not in ("variant", "registers")}
    lines += [f"  {key}: {value}" for key, value in details.items()]
    return "\n".join(lines)


def describe_simokit_checkpoint(path: str | Path) -> str:
    """Kind, encoder, heads and import provenance of a simokit checkpoint (.safetensors)."""
    from simokit.models.checkpoint import load_checkpoint

    meta = load_checkpoint(path).meta
    enc = meta.encoder
    lines = [
        f"simokit checkpoint: {path} ({meta.kind})",
        f"encoder: dim {enc.get('embed_dim')}, depth {enc.get('depth')}, heads {enc.get('num_heads')}, "
        f"patch {enc.get('patch_size')}, registers {enc.get('num_register_tokens')}; "
        f"input {meta.input_size[0]}x{meta.input_size[1]}, mean {meta.mean}, std {meta.std}",
    ]
    for task, head in meta.heads.items():
        lines.append(
            f"head {task}: {head.get('kind')}, blocks read {head.get('layers')}, "
            f"outputs {head.get('out_channels')}, activation {head.get('activation')}"
        )
    if meta.classes:
        lines.append(f"classes ({len(meta.classes)}): {', '.join(meta.classes[:_SHOWN_CLASSES])}")
    if "import" in meta.extra:
        lines.append(f"imported from: {json.dumps(meta.extra['import'], default=str)}")
    return "\n".join(lines)

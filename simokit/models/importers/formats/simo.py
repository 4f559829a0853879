"""SIMO repository checkpoints: {"model_class": "MTLDinoV2", "constructor_args", "head_tasks", "state_dict"}.

The state dict holds `backbone.*` (official DINOv2 names) and one `decoders.<task>.*` head per task;
`constructor_args` says which blocks the heads read (`out_index`, returned in block order), whether
they append the CLS token (`cls_token`), the head architecture shared by all tasks (`head_archs`)
and per task the class count or depth range (`head_tasks`). SIMO reads blocks before the final
LayerNorm and pads inputs to a multiple of the patch size (centred); both are recorded. Each supported
decoder becomes one expert sharing the file's encoder.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from simokit.errors import CheckpointError, ConfigError
from simokit.models.heads import HeadConfig
from simokit.models.importers.formats.dinov2_linear import (
    bn_conv_head,
    check_blocks,
    class_names,
    depth_head,
    depth_output,
)
from simokit.models.importers.formats.simo_dpt import simo_dpt_head
from simokit.models.importers.infer import infer_vit_config, official_encoder
from simokit.models.importers.model import ImportedModel
from simokit.models.importers.registry import register
from simokit.models.importers.source import Source

# SIMO task names -> simokit tasks; the others (disp, part_seg, keypoints2d, edge_texture) have none
TASKS = {
    "seg": "seg",
    "segment_semantic": "seg",
    "depth": "depth",
    "depth_zbuffer": "depth",
    "normal": "normal",
}


@dataclass
class Decoder:
    """One SIMO decoder: its task names, source-layout state (prefix removed), its head_tasks entry,
    the blocks it reads in the order it receives them, and the encoder's width and patch size."""

    source_task: str
    task: str
    state: dict[str, Tensor]
    settings: Mapping[str, Any]
    layers: tuple[int, ...]
    use_cls: bool
    dim: int
    patch_size: int
    where: str


def _setting(decoder: Decoder, key: str) -> Any:
    if key not in decoder.settings:
        raise ConfigError(f"{decoder.where}: head_tasks['{decoder.source_task}'] lacks '{key}'")
    return decoder.settings[key]


def _linear(decoder: Decoder, bins: bool) -> tuple[HeadConfig, dict[str, Tensor]]:
    """SIMO's linear heads: BN + 1x1 conv for seg and normals; conv_depth (ReLU or bins) for depth."""
    d = decoder
    if d.task == "depth":
        depth_range = (float(_setting(d, "min_depth")), float(_setting(d, "max_depth")))
        cfg, state = depth_head(d.state, d.layers, d.use_cls, depth_range, False, d.dim, d.where)
        if bool(cfg.options["bins"]) != bins:
            kind = "bins" if bins else "one regression output"
            raise CheckpointError(
                f"{d.where}: conv_depth has {d.state['conv_depth.weight'].shape[0]} outputs, not {kind}"
            )
        return cfg, state
    conv = "conv_seg" if d.task == "seg" else "conv_normal"
    cfg, state = bn_conv_head(d.state, conv, d.layers, d.use_cls, False, d.dim, d.where)
    expected = int(_setting(d, "num_classes"))
    if cfg.out_channels != expected:
        raise CheckpointError(
            f"{d.where}: {conv} predicts {cfg.out_channels} channels but head_tasks['{d.source_task}'] "
            f"says num_classes={expected}"
        )
    if d.task == "normal" and expected != 3:
        raise ConfigError(f"{d.where}: a normal head predicts 3 channels, not {expected}")
    return cfg, state


def _dpt(decoder: Decoder, arch: str) -> tuple[HeadConfig, dict[str, Tensor]]:
    """SIMO's DPT decoders (dpt, dpt_small, dpt-add_small) as dinov2_dpt heads."""
    d = decoder
    args = {"out_index": list(d.layers), "head_tasks": {d.source_task: dict(d.settings)}}
    cfg, state = simo_dpt_head(d.source_task, arch, args, d.state)
    if d.task == "seg" and cfg.out_channels != int(_setting(d, "num_classes")):
        raise CheckpointError(
            f"{d.where}: the DPT decoder predicts {cfg.out_channels} channels but "
            f"head_tasks['{d.source_task}'] says num_classes={_setting(d, 'num_classes')}"
        )
    return cfg, state


# head_archs -> converter of one decoder
ARCHS: dict[str, Callable[[Decoder], tuple[HeadConfig, dict[str, Tensor]]]] = {
    "linear": lambda d: _linear(d, bins=False),
    "linear_bins": lambda d: _linear(d, bins=True),
    "dpt": lambda d: _dpt(d, "dpt"),
    "dpt_small": lambda d: _dpt(d, "dpt_small"),
    "dpt-add_small": lambda d: _dpt(d, "dpt-add_small"),
}


def _output(cfg: HeadConfig, task: str) -> str:
    if task == "depth":
        return depth_output(cfg)
    return "logits" if task == "seg" else "raw 3-vectors (not normalised, as SIMO returns them)"


class SimoCheckpoint:
    """A SIMO `utils.torch_save` file: encoder plus one head per task."""

    name = "simo"
    description = (
        "SIMO repository checkpoint (MTLDinoV2: model_class, constructor_args, head_tasks, state_dict)"
    )

    def detect(self, source: Source) -> bool:
        """A dict with model_class MTLDinoV2, constructor_args and a state dict."""
        top = source.top
        return (
            isinstance(top, Mapping)
            and top.get("model_class") == "MTLDinoV2"
            and isinstance(top.get("constructor_args"), Mapping)
        )

    def convert(self, source: Source) -> list[ImportedModel]:
        """One expert per decoder of a supported task (the others are listed in details)."""
        where = str(source.path)
        args = source.top["constructor_args"]
        arch = str(args.get("head_archs", "linear"))
        if arch not in ARCHS:
            raise ConfigError(
                f"{where}: SIMO head arch '{arch}' is not supported yet; supported: {', '.join(ARCHS)}"
            )
        backbone = official_encoder(source.state_dict("state_dict.backbone."))
        vit = infer_vit_config(backbone)
        # SIMO builds its ViT with the hub defaults unless the constructor overrides them
        vit = dataclasses.replace(
            vit,
            interpolate_antialias=bool(args.get("interpolate_antialias", False)),
            interpolate_offset=float(args.get("interpolate_offset", 0.1)),
        )
        head_tasks = args.get("head_tasks") or source.top.get("head_tasks") or {}
        layers = tuple(sorted(int(i) for i in args.get("out_index", (5, 7, 9, 11))))
        check_blocks(layers, vit.depth, where)
        skipped = [t for t in head_tasks if t not in TASKS]
        supported = [t for t in head_tasks if t in TASKS]
        if not supported:
            raise ConfigError(
                f"{where}: SIMO tasks {', '.join(map(str, head_tasks)) or 'none'} have no simokit task; "
                f"supported: {', '.join(TASKS)}"
            )
        models = []
        for name in supported:
            state = source.state_dict(f"state_dict.decoders.{name}.")
            if not state:
                raise CheckpointError(
                    f"{where}: head_tasks lists '{name}' but the state dict has no decoders.{name}.*"
                )
            decoder = Decoder(
                name, TASKS[name], state, head_tasks[name] or {}, layers, bool(args.get("cls_token", False)),
                vit.embed_dim, vit.patch_size, f"{where} [{name}]",
            )  # fmt: skip
            cfg, head_state = ARCHS[arch](decoder)
            details = {
                "variant": str(args.get("arch_name", "unknown")),
                "registers": vit.num_register_tokens,
                "head": f"SIMO {arch}",
                "source task": name,
                "blocks read": list(cfg.layers),
                "norm": cfg.norm,
                "cls": cfg.use_cls,
                "output": _output(cfg, decoder.task),
                "padding": "centred to a multiple of the patch size",
                "skipped tasks": skipped,
            }
            classes = class_names(cfg.out_channels) if decoder.task == "seg" else ()
            models.append(
                ImportedModel(
                    self.name, vit, backbone, decoder.task, cfg, head_state, classes, details=details
                )
            )
        return models


register(SimoCheckpoint())

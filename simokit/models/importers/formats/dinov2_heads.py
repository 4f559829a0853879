"""Official DINOv2 dense-evaluation heads: `{"state_dict": {"decode_head.*"}}` files with no encoder inside.

`dinov2_<arch>_{nyu,kitti}_linear[4]_head.pth` are depth heads (256 uniform bins over [patch, CLS]
of the last block, or of four blocks, read before the final LayerNorm); `dinov2_<arch>_{ade20k,
voc2012}_linear_head.pth` are segmentation heads (BatchNorm + 1x1 conv on the last block's patch
tokens after the final LayerNorm). A head file is paired with the backbone it was trained on, given
separately (`read_models(head, backbone=...)`); the expert's encoder is that backbone, so its task
vector is zero and its base hash is the backbone's. The dataset (depth range, class count) comes
from the file name, as the hub names the files.
"""

from __future__ import annotations

import re
from typing import Any

from torch import Tensor

from simokit.errors import CheckpointError, ConfigError
from simokit.models.checkpoint import state_hash
from simokit.models.heads import HeadConfig
from simokit.models.importers.dinov2_eval import DEPTH_RANGES, FOUR_BLOCKS
from simokit.models.importers.formats.dinov2_linear import (
    bn_conv_head,
    check_blocks,
    class_names,
    depth_head,
    depth_output,
)
from simokit.models.importers.model import ImportedModel
from simokit.models.importers.registry import register
from simokit.models.importers.source import Source

_PREFIX = "state_dict.decode_head."
_NAME = re.compile(r"_(nyu|kitti|ade20k|voc2012)_(linear4|linear|ms|dpt)_head")
SEG_CLASSES = {"ade20k": 150, "voc2012": 21}
_DPT_PARTS = ("reassemble_blocks.", "convs.", "fusion_blocks.", "project.")


def _name_parts(source: Source) -> tuple[str | None, str | None]:
    """(dataset, head type) from the hub's file name, or None for what the name does not say."""
    match = _NAME.search(source.path.name)
    return (match.group(1), match.group(2)) if match else (None, None)


class OfficialDinov2Heads:
    """An official DINOv2 linear head file, converted with the backbone it is paired with."""

    name = "dinov2_heads"
    description = (
        "official DINOv2 dense head (dinov2_<arch>_{nyu,kitti}_linear[4]_head.pth, "
        "dinov2_<arch>_{ade20k,voc2012}_linear_head.pth); needs its backbone"
    )
    takes_backbone = True

    def detect(self, source: Source) -> bool:
        """Only `state_dict.decode_head.*` tensors: a head without an encoder."""
        keys = list(source.tensors)
        return bool(keys) and all(k.startswith(_PREFIX) for k in keys)

    def convert(self, source: Source) -> list[ImportedModel]:
        """One expert: the paired backbone as encoder plus the head."""
        base = source.backbone
        if base is None:
            raise ConfigError(
                f"{source.path} is an official DINOv2 head without an encoder; pass the backbone it was "
                "trained on (e.g. --backbone dinov2_vits14_pretrain.pth)"
            )
        state = source.state_dict(_PREFIX)
        dataset, kind = _name_parts(source)
        if kind == "dpt" or any(k.startswith(_DPT_PARTS) for k in state):
            raise ConfigError(f"{source.path}: official DINOv2 DPT head files are not supported yet")
        if kind == "ms":
            raise ConfigError(f"{source.path}: multi-scale (ms) DINOv2 segmentation heads are not supported")
        if "conv_seg.weight" in state:
            return [self._segmentation(source, base, state, dataset)]
        if "conv_depth.weight" in state:
            return [self._depth(source, base, state, dataset, kind)]
        raise CheckpointError(
            f"{source.path}: decode_head has neither conv_seg nor conv_depth "
            f"(keys: {', '.join(sorted(state)[:6])})"
        )

    def _segmentation(
        self, source: Source, base: ImportedModel, state: dict[str, Tensor], dataset: str | None
    ) -> ImportedModel:
        where, dim, depth = str(source.path), base.vit.embed_dim, base.vit.depth
        width = state["conv_seg.weight"].shape[1]
        if width == 4 * dim:
            raise ConfigError(f"{where}: a four-block (ms) DINOv2 segmentation head is not supported")
        cfg, head_state = bn_conv_head(state, "conv_seg", (depth - 1,), False, True, dim, where)
        expected = SEG_CLASSES.get(dataset or "")
        if expected is not None and cfg.out_channels != expected:
            raise CheckpointError(
                f"{where}: conv_seg predicts {cfg.out_channels} classes but {dataset} has {expected}"
            )
        details = {
            "output": "logits",
            "head": "DINOv2 linear (BatchNorm + 1x1 conv)",
            "classes": cfg.out_channels,
        }
        return self._model(
            source, base, "seg", cfg, head_state, class_names(cfg.out_channels), dataset, details
        )

    def _depth(
        self,
        source: Source,
        base: ImportedModel,
        state: dict[str, Tensor],
        dataset: str | None,
        kind: str | None,
    ) -> ImportedModel:
        where, dim, depth = str(source.path), base.vit.embed_dim, base.vit.depth
        if dataset not in DEPTH_RANGES:
            raise ConfigError(
                f"{where}: cannot tell the depth range; keep the hub's file name (*_nyu_* or *_kitti_*)"
            )
        blocks = state["conv_depth.weight"].shape[1] // (2 * dim)
        if kind is not None and blocks != (4 if kind == "linear4" else 1):
            raise CheckpointError(
                f"{where}: a '{kind}' head should read {4 if kind == 'linear4' else 1} "
                f"block(s) but its conv reads {blocks} of a {dim}-wide encoder"
            )
        if blocks == 4 and depth not in FOUR_BLOCKS:
            raise CheckpointError(
                f"{where}: four-block heads exist for 12, 24 and 40-block encoders; the backbone has {depth}"
            )
        layers = FOUR_BLOCKS[depth] if blocks == 4 else (depth - 1,)
        check_blocks(layers, depth, where)
        cfg, head_state = depth_head(state, layers, True, DEPTH_RANGES[dataset], True, dim, where)
        details = {"output": depth_output(cfg), "head": "DINOv2 linear depth (1x1 conv, 4x upsampling)"}
        return self._model(source, base, "depth", cfg, head_state, (), dataset, details)

    def _model(
        self,
        source: Source,
        base: ImportedModel,
        task: str,
        cfg: HeadConfig,
        head_state: dict[str, Tensor],
        classes: tuple[str, ...],
        dataset: str | None,
        details: dict[str, Any],
    ) -> ImportedModel:
        info = {
            **base.details,
            **details,
            "dataset": dataset or "unknown",
            "blocks read": list(cfg.layers),
            "norm": cfg.norm,
            "cls": cfg.use_cls,
            "backbone": base.format,
        }
        return ImportedModel(
            self.name,
            base.vit,
            base.encoder,
            task=task,
            head=cfg,
            head_state=head_state,
            classes=classes,
            input_size=base.input_size,
            base_hash=state_hash(base.encoder),
            details=info,
        )


register(OfficialDinov2Heads())

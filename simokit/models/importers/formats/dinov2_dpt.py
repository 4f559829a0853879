"""Official DINOv2 DPT depth heads (dinov2_<arch>_{nyu,kitti}_dpt_head.pth) on their frozen backbone.

A head file holds only `{"state_dict": {"decode_head.*"}}`; its encoder is the matching pretrained
backbone, given with `--backbone` (an official .pth or a Hugging Face Dinov2Model folder) or found as
the hub's sibling file `dinov2_<arch>_pretrain.pth` in the head file's folder (importers.lookup).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from torch import Tensor

from simokit.errors import CheckpointError, ConfigError
from simokit.models.checkpoint import state_hash
from simokit.models.heads import HeadConfig
from simokit.models.importers.dinov2_eval import DEPTH_RANGES, FOUR_BLOCKS, OFFICIAL_DEPTH
from simokit.models.importers.formats.dpt_layout import mmcv_dpt_head
from simokit.models.importers.infer import variant_name
from simokit.models.importers.model import ImportedModel
from simokit.models.importers.registry import register
from simokit.models.importers.source import Source

_PROBE = "reassemble_blocks.projects.0.conv.weight"
_PREFIXES = ("state_dict.decode_head.", "decode_head.")
_FILE_NAME = re.compile(r"^(dinov2_vit[sblg]14(?:_reg4)?)_(nyu|kitti)_dpt_head")


def _decoder(state: dict[str, Tensor]) -> dict[str, Tensor]:
    for prefix in _PREFIXES:
        if any(k.startswith(prefix) for k in state):
            return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    return dict(state)


def dinov2_dpt_head(
    state: dict[str, Tensor], arch_dim: int, dataset: str, layers: Sequence[int] | None = None
) -> tuple[HeadConfig, dict[str, Tensor]]:
    """An official DPT head file's state (keys `decode_head.*`, optionally under `state_dict.`) as a
    dinov2_dpt HeadConfig and head state, for an encoder `arch_dim` wide trained on `dataset`.

    `layers` defaults to the blocks the official depther reads for that width.
    """
    if dataset not in DEPTH_RANGES:
        raise ConfigError(f"DINOv2 DPT dataset is '{dataset}'; choose from {', '.join(DEPTH_RANGES)}")
    decoder = _decoder(state)
    if _PROBE not in decoder:
        raise CheckpointError(f"not a DINOv2 DPT head: no decode_head.{_PROBE}")
    dim = decoder[_PROBE].shape[1]
    if dim != arch_dim:
        raise CheckpointError(f"DINOv2 DPT head reads {dim}-wide features but the encoder is {arch_dim} wide")
    if layers is None:
        if arch_dim not in OFFICIAL_DEPTH:
            raise ConfigError(f"no official DPT block indices for a {arch_dim}-wide encoder; give layers")
        layers = FOUR_BLOCKS[OFFICIAL_DEPTH[arch_dim]]
    low, high = DEPTH_RANGES[dataset]
    options = {"min_depth": low, "max_depth": high}
    return mmcv_dpt_head(decoder, layers, "project", options, "DINOv2 DPT head")


def _dataset(source: Source) -> str:
    match = _FILE_NAME.match(source.path.name)
    if match:
        return match.group(2)
    dataset = (source.config or {}).get("dataset")
    if dataset is None:
        raise ConfigError(
            f"{source.path}: cannot tell nyu from kitti (the file was renamed); keep the official file "
            "name or set source.config['dataset']"
        )
    return str(dataset)


class OfficialDPTHead:
    """A DINOv2 depth-evaluation DPT head file, imported with its pretrained backbone."""

    name = "dinov2_dpt"
    description = "official DINOv2 DPT depth head (dinov2_<arch>_{nyu,kitti}_dpt_head.pth) + its backbone"
    takes_backbone = True

    def detect(self, source: Source) -> bool:
        """decode_head DPT keys (reassemble_blocks.projects) at the top or under state_dict."""
        return any(f"{prefix}{_PROBE}" in source.tensors for prefix in _PREFIXES)

    def convert(self, source: Source) -> list[ImportedModel]:
        """One depth expert: the backbone unchanged (frozen) and the DPT head."""
        dataset = _dataset(source)
        base = source.backbone
        if base is None:
            raise ConfigError(
                f"{source.path} is an official DINOv2 DPT head without an encoder; pass the backbone it "
                "was trained on (--backbone dinov2_vits14_pretrain.pth) or put it next to the head file"
            )
        backbone_path = base.details.get("path", "the backbone")
        if base.vit.depth not in FOUR_BLOCKS:
            raise ConfigError(
                f"{backbone_path}: a {base.vit.depth}-block encoder is no official DINOv2 arch; "
                f"the DPT heads read blocks of {', '.join(map(str, FOUR_BLOCKS))}-block encoders"
            )
        layers = FOUR_BLOCKS[base.vit.depth]
        head, head_state = dinov2_dpt_head(source.tensors, base.vit.embed_dim, dataset, layers)
        low, high = DEPTH_RANGES[dataset]
        details = {
            "variant": variant_name(base.vit.embed_dim),
            "registers": base.vit.num_register_tokens,
            "head": "dinov2_dpt (readout project)",
            "blocks": list(layers),
            "norm": False,
            "output": f"relu + {low} m, clamped to [{low}, {high}] m ({dataset})",
            "backbone": str(backbone_path),
        }
        return [
            ImportedModel(
                self.name,
                base.vit,
                base.encoder,
                task="depth",
                head=head,
                head_state=head_state,
                base_hash=state_hash(base.encoder),
                details=details,
            )
        ]


register(OfficialDPTHead())

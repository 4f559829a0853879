"""Key layouts of DPT heads (DINOv2's mmcv-style heads, which SIMO shares) mapped to the dinov2_dpt head."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from simokit.errors import CheckpointError, ConfigError
from simokit.models.heads import HeadConfig, build_head

Renames = Sequence[tuple[str, str]]

# DINOv2's depth DPT head (and SIMO's seg, depth and normal DPT heads) -> Dinov2DPTHead
MMCV_DPT_RENAMES: Renames = (
    (r"^reassemble_blocks\.readout_projects\.(\d+)\.0\.", r"reassemble.\1.readout."),
    (r"^reassemble_blocks\.projects\.(\d+)\.conv\.", r"reassemble.\1.project."),
    (r"^reassemble_blocks\.resize_layers\.(\d+)\.", r"reassemble.\1.resize."),
    (r"^convs\.(\d+)\.conv\.", r"convs.\1."),
    (r"^fusion_blocks\.(\d+)\.project\.conv\.", r"fusion.\1.out."),
    (r"^fusion_blocks\.(\d+)\.res_conv_unit(\d)\.conv(\d)\.conv\.", r"fusion.\1.unit\2.conv\3."),
    (r"^project\.conv\.", "project."),
    (r"^conv_(?:depth|seg|normal)\.head\.", "out."),
)


def rename_keys(state: dict[str, Tensor], renames: Renames, where: str) -> dict[str, Tensor]:
    """Each key renamed by the first pattern that matches; a key no pattern knows raises CheckpointError."""
    out: dict[str, Tensor] = {}
    unknown: list[str] = []
    for key, value in state.items():
        for pattern, replacement in renames:
            new, count = re.subn(pattern, replacement, key)
            if count:
                out[new] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointError(f"{where}: DPT head keys this importer does not know: {sorted(unknown)[:6]}")
    return out


def duplicate_add_readout(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """For readout "add": the 1x1 projections read [patch, cls] with the same weights on both halves."""
    out = dict(state)
    for key, value in state.items():
        if re.fullmatch(r"reassemble\.\d+\.project\.weight", key):
            out[key] = torch.cat((value, value), dim=1)
    return out


def checked_head_state(cfg: HeadConfig, dim: int, state: dict[str, Tensor], where: str) -> dict[str, Tensor]:
    """`state` when it loads strictly into the head `cfg` builds; else one CheckpointError line."""
    try:
        head = build_head(cfg, dim)
    except ConfigError as err:
        raise CheckpointError(f"{where}: the DPT head's shapes give no valid head: {err}") from None
    expected = head.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    bad = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or extra or bad:
        raise CheckpointError(
            f"{where}: DPT head does not fit the layout its shapes imply "
            f"(missing {missing[:3]}, unexpected {extra[:3]}, misshapen {bad[:3]})"
        )
    return {k: state[k] for k in expected}


def _shape(state: dict[str, Tensor], key: str, where: str) -> tuple[int, ...]:
    if key not in state:
        raise CheckpointError(f"{where}: DPT head lacks '{key}'; the file is incomplete")
    return tuple(state[key].shape)


def mmcv_dpt_head(
    decoder: dict[str, Tensor],
    layers: Sequence[int],
    readout: str,
    options: dict[str, Any],
    where: str,
) -> tuple[HeadConfig, dict[str, Tensor]]:
    """A DINOv2/SIMO-layout DPT decoder state (keys relative to the decoder) as a dinov2_dpt head.

    Widths come from the tensor shapes; `options` adds the output settings (min/max depth...).
    The heads read block outputs before the final LayerNorm (norm=False).
    """
    dim = _shape(decoder, "reassemble_blocks.projects.0.conv.weight", where)[1]
    post = [_shape(decoder, f"reassemble_blocks.projects.{i}.conv.weight", where)[0] for i in range(4)]
    width = _shape(decoder, "convs.0.conv.weight", where)[0]
    has_readout = any(k.startswith("reassemble_blocks.readout_projects.") for k in decoder)
    if has_readout != (readout == "project"):
        raise CheckpointError(
            f"{where}: DPT head {'has' if has_readout else 'lacks'} readout projections, "
            f"which disagrees with its '{readout}' readout"
        )
    seg = any(k.startswith(("conv_seg.", "conv_normal.")) for k in decoder)
    out_key = next((k for k in decoder if re.fullmatch(r"conv_(depth|seg|normal)\.head\.4\.weight", k)), None)
    if out_key is None:
        raise CheckpointError(f"{where}: DPT head has no output stack (conv_depth, conv_seg or conv_normal)")
    out_channels = _shape(decoder, out_key, where)[0]
    state = rename_keys(decoder, MMCV_DPT_RENAMES, where)
    if readout == "add":
        state = duplicate_add_readout(state)
    cfg = HeadConfig(
        kind="dinov2_dpt",
        out_channels=out_channels,
        layers=tuple(layers),
        use_cls=readout != "ignore",
        dpt_features=width,
        norm=False,
        options={"readout": readout, "post_channels": post, "output": "seg" if seg else "depth", **options},
    )
    return cfg, checked_head_state(cfg, dim, state, where)

"""timm DINOv2 ViTs (vit_{small,base,large,giant}_patch14[_reg4]_dinov2) as base encoders.

timm keeps the official block names (norm1, attn.qkv, attn.proj, ls1.gamma, norm2, mlp.fc1/fc2,
ls2.gamma) and renames the rest. Register models are built with `no_embed_class`: `reg_token` holds
the registers, `cls_token` already has the CLS position added, and `pos_embed` covers the patches
only. The packed SwiGLU of the giant models is `mlp.fc1` (gate half first, as the official `w12`) and
`mlp.fc2` (the official `w3`). A file holds no head count; the official 64-wide heads are assumed.
Positions are resampled with the official DINOv2 rule. timm resamples its table itself (antialiased
bicubic straight to the grid, at creation or per call with dynamic_img_size), which equals the
official rule for register models but not for the others (no 0.1 offset): at the native 518 px grid
nothing is resampled and the two agree.

Checked without timm installed: the layout is built by timm's own load-time conversion of an
official state dict, and timm's token preparation (positions added before or after prepending the
CLS and register tokens) is written out in the test. Not checked: a model built by timm itself, and
the config.json of a timm hub folder (`architecture`, `pretrained_cfg` input_size/mean/std) beyond
those field names.
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch
from torch import Tensor

from simokit.errors import CheckpointError
from simokit.models.importers.infer import infer_vit_config, official_encoder, variant_name
from simokit.models.importers.model import ImportedModel
from simokit.models.importers.registry import register
from simokit.models.importers.source import Source
from simokit.models.layers import swiglu_hidden_features

_FC = re.compile(r"^blocks\.(\d+)\.mlp\.fc([12])\.(weight|bias)$")
_DROPPED = ("head.", "fc_norm.", "norm_pre.", "attn_pool.")  # classifier parts, not encoder weights


def _split_pos_embed(state: dict[str, Tensor], registers: int) -> tuple[Tensor, Tensor, Tensor | None]:
    """(cls_token, pos_embed with a CLS slot, registers) in the official convention.

    timm's position table has 0, 1 or 1 + registers leading slots before the square patch grid. A CLS
    position that timm folded into cls_token gets a zero slot (the sum is what the model adds); register
    positions, which the official model lacks, are folded into the register tokens.
    """
    pos, cls = state["pos_embed"], state["cls_token"]
    reg = state.get("reg_token")
    length = pos.shape[1]
    for lead in (0, 1, 1 + registers):
        if lead <= length and math.isqrt(length - lead) ** 2 == length - lead and length > lead:
            break
    else:
        raise CheckpointError(f"timm pos_embed has {length} positions: no square patch grid after 0, 1 "
                              f"or {1 + registers} leading slots")  # fmt: skip
    if lead == 0:
        pos = torch.cat((pos.new_zeros(1, 1, pos.shape[-1]), pos), dim=1)
    elif lead > 1 and reg is not None:
        reg = reg + pos[:, 1:lead]
        pos = torch.cat((pos[:, :1], pos[:, lead:]), dim=1)
    return cls, pos, reg


def _position_note(lead: int) -> str:
    """What `simokit inspect` says about the file's position table, from its leading slots."""
    if lead == 0:
        return "folded into cls_token (no_embed_class)"
    return "in pos_embed" + ("; register positions folded into the registers" if lead > 1 else "")


def _rename_ffn(state: dict[str, Tensor], dim: int) -> dict[str, Tensor]:
    """fc1/fc2 stay for a plain MLP; a packed SwiGLU (fc1 twice the DINOv2 SwiGLU width) becomes w12/w3."""
    fc1 = state.get("blocks.0.mlp.fc1.weight")
    packed = (
        fc1 is not None and fc1.shape[0] == 2 * swiglu_hidden_features(4 * dim) and fc1.shape[0] != 4 * dim
    )
    if not packed:
        return dict(state)
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        match = _FC.match(key)
        out[f"blocks.{match[1]}.mlp.{'w12' if match[2] == '1' else 'w3'}.{match[3]}" if match else key] = (
            value
        )
    return out


def timm_to_official(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """A timm DINOv2 ViT state dict in the official DINOv2 layout (encoder keys only)."""
    if "cls_token" not in state or "pos_embed" not in state:
        raise CheckpointError("timm state dict lacks cls_token or pos_embed; not a timm DINOv2 ViT")
    registers = state["reg_token"].shape[1] if "reg_token" in state else 0
    cls, pos, reg = _split_pos_embed(state, registers)
    skip = ("cls_token", "pos_embed", "reg_token")
    out = {k: v for k, v in state.items() if k not in skip and not k.startswith(_DROPPED)}
    out.update({"cls_token": cls, "pos_embed": pos})
    if reg is not None:
        out["register_tokens"] = reg
    return official_encoder(_rename_ffn(out, cls.shape[-1]))


def _pretrained_cfg(config: dict[str, Any] | None) -> dict[str, Any]:
    """Input size and normalisation from a timm hub config.json, when given."""
    cfg = (config or {}).get("pretrained_cfg") or {}
    out: dict[str, Any] = {}
    if len(cfg.get("input_size") or ()) == 3:
        out["input_size"] = (int(cfg["input_size"][1]), int(cfg["input_size"][2]))
    if len(cfg.get("mean") or ()) == 3 and len(cfg.get("std") or ()) == 3:
        out["mean"], out["std"] = tuple(cfg["mean"]), tuple(cfg["std"])
    return out


class TimmDinov2:
    """A timm DINOv2 ViT state dict (file, or a timm hub folder with its config.json)."""

    name = "timm"
    description = "timm DINOv2 ViT (vit_*_patch14[_reg4]_dinov2: reg_token, folded CLS position, fc1/fc2)"

    def detect(self, source: Source) -> bool:
        """timm's keys: reg_token, or an official-looking ViT without mask_token, or a timm config.json."""
        keys = source.tensors
        if "cls_token" not in keys or "pos_embed" not in keys or "blocks.0.attn.qkv.weight" not in keys:
            return False
        arch = str((source.config or {}).get("architecture", ""))
        return "reg_token" in keys or "mask_token" not in keys or "dinov2" in arch

    def convert(self, source: Source) -> list[ImportedModel]:
        """One base encoder in the official layout."""
        state = timm_to_official(source.tensors)
        vit = infer_vit_config(state)
        dropped = sorted({k.split(".")[0] for k in source.tensors if k.startswith(_DROPPED)})
        details: dict[str, Any] = {
            "variant": variant_name(vit.embed_dim),
            "registers": vit.num_register_tokens,
            "architecture": (source.config or {}).get("architecture", "not recorded"),
            "CLS position": _position_note(
                source.tensors["pos_embed"].shape[1] - state["pos_embed"].shape[1] + 1
            ),
        }
        if dropped:
            details["dropped"] = ", ".join(dropped)
        return [ImportedModel(self.name, vit, state, details=details, **_pretrained_cfg(source.config))]


register(TimmDinov2())

"""Hugging Face DepthAnythingForDepthEstimation folders: a Dinov2Backbone, the neck and the head.

The backbone goes through the DINOv2 converter; the neck and head keys map one to one onto the
da_dpt head (the same layers as the official checkpoints under other names). Outputs come at the patch
grid times the patch size, ReLU (relative) or sigmoid (metric), times `max_depth`, as transformers
computes them. Position embeddings are resampled by the official DINOv2 rule, as for every Hugging Face
DINOv2 import (the rule these weights were trained with, and one encoder config for all of them); away
from the native grid transformers resamples without the 0.1 offset (2e-6 of the depth apart on the
random test model).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from torch import Tensor

from simokit.errors import CheckpointError
from simokit.models.convert import convert_hf_dinov2, vit_config_from_hf
from simokit.models.importers.formats.depth_anything import (
    INPUT_SIZE,
    check_head_state,
    da_head_config,
    encoder_name,
)
from simokit.models.importers.infer import official_encoder
from simokit.models.importers.model import ImportedModel
from simokit.models.importers.registry import register
from simokit.models.importers.source import Source

_UNIT = {"residual_layer1": "resConfUnit1", "residual_layer2": "resConfUnit2"}
_CONV = {"convolution1": "conv1", "convolution2": "conv2"}
_HEAD = {"head.conv1": "scratch.output_conv1", "head.conv2": "scratch.output_conv2.0"}
_HEAD["head.conv3"] = "scratch.output_conv2.2"
_REASSEMBLE = re.compile(r"^neck\.reassemble_stage\.layers\.(\d)\.(projection|resize)\.(weight|bias)$")
_NECK_CONV = re.compile(r"^neck\.convs\.(\d)\.weight$")
_FUSION = re.compile(r"^neck\.fusion_stage\.layers\.(\d)\.(.+)\.(weight|bias)$")


def _fusion_name(index: int, module: str) -> str | None:
    """HF fusion layer j (deepest first) is refinenet 4 - j; its units and convs are renamed."""
    base = f"scratch.refinenet{4 - index}"
    if module == "projection":
        return f"{base}.out_conv"
    parts = module.split(".")
    if len(parts) == 2 and parts[0] in _UNIT and parts[1] in _CONV:
        return f"{base}.{_UNIT[parts[0]]}.{_CONV[parts[1]]}"
    return None


def hf_head_state(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """The neck and head tensors of a DepthAnythingForDepthEstimation under the da_dpt head's names."""
    out: dict[str, Tensor] = {}
    unknown = []
    for key, value in tensors.items():
        if key.startswith("backbone."):
            continue
        name: str | None = None
        if m := _REASSEMBLE.match(key):
            branch, part, leaf = m.groups()
            name = f"{'projects' if part == 'projection' else 'resize_layers'}.{branch}.{leaf}"
        elif m := _NECK_CONV.match(key):
            name = f"scratch.layer{int(m.group(1)) + 1}_rn.weight"
        elif m := _FUSION.match(key):
            module = _fusion_name(int(m.group(1)), m.group(2))
            name = None if module is None else f"{module}.{m.group(3)}"
        elif key.rsplit(".", 1)[0] in _HEAD:
            stem, leaf = key.rsplit(".", 1)
            name = f"{_HEAD[stem]}.{leaf}"
        if name is None:
            unknown.append(key)
        else:
            out[name] = value
    if unknown:
        raise CheckpointError(
            f"DepthAnythingForDepthEstimation has keys this importer does not know: {unknown[:6]}"
        )
    return out


def _blocks(backbone: dict[str, Any], depth: int) -> tuple[int, ...]:
    """Blocks the backbone hands on: stage k is the output of block k - 1 (stage 0 is the embedding)."""
    indices = backbone.get("out_indices")
    if not indices and backbone.get("out_features"):
        indices = [int(str(name).removeprefix("stage")) for name in backbone["out_features"]]
    if not indices or len(indices) != 4 or min(indices) < 1 or max(indices) > depth:
        raise CheckpointError(
            f"backbone_config out_indices {indices} must name 4 blocks (stages 1..{depth}) for the DPT neck"
        )
    return tuple(int(i) - 1 for i in indices)


def _check_config(config: dict[str, Any], backbone: dict[str, Any]) -> None:
    """Refuse settings the da_dpt head does not reproduce, one line each."""
    if backbone.get("model_type", "dinov2") != "dinov2":
        raise CheckpointError(
            f"backbone model_type '{backbone.get('model_type')}' is not supported; only dinov2"
        )
    if backbone.get("reshape_hidden_states", True):
        raise CheckpointError("backbone_config.reshape_hidden_states is true; Depth Anything needs it false")
    if list(config.get("reassemble_factors", [4, 2, 1, 0.5])) != [4, 2, 1, 0.5]:
        raise CheckpointError(f"reassemble_factors {config.get('reassemble_factors')} are not [4, 2, 1, 0.5]")
    if config.get("head_in_index", -1) != -1:
        raise CheckpointError(f"head_in_index {config.get('head_in_index')} is not -1")
    kind = config.get("depth_estimation_type", "relative")
    if kind not in ("relative", "metric"):
        raise CheckpointError(f"depth_estimation_type '{kind}' is neither relative nor metric")


class HuggingFaceDepthAnything:
    """A `save_pretrained` folder of DepthAnythingForDepthEstimation (model_type depth_anything)."""

    name = "hf_depth_anything"
    description = "Hugging Face DepthAnythingForDepthEstimation folder (Dinov2 backbone, relative or metric)"

    def detect(self, source: Source) -> bool:
        """config.json says model_type depth_anything."""
        return (source.config or {}).get("model_type") == "depth_anything"

    def convert(self, source: Source) -> list[ImportedModel]:
        """One depth expert: relative (task relative_depth) or metric (task depth)."""
        config = source.config or {}
        backbone = config.get("backbone_config")
        if not isinstance(backbone, dict):
            raise CheckpointError(
                f"{source.path}: config.json has no backbone_config; a named backbone is not read"
            )
        _check_config(config, backbone)
        vit = vit_config_from_hf(backbone)
        encoder = official_encoder(convert_hf_dinov2(source.state_dict("backbone.")))
        layers = _blocks(backbone, vit.depth)
        metric = config.get("depth_estimation_type", "relative") == "metric"
        max_depth = float(config.get("max_depth") or 1.0)
        head_state = hf_head_state(source.tensors)
        patch = int(config.get("patch_size") or backbone.get("patch_size") or 14)
        norm = bool(backbone.get("apply_layernorm", True))
        output = "sigmoid" if metric else "relu"
        head = da_head_config(head_state, layers, "v2", output, max_depth, patch_size=patch)
        head = dataclasses.replace(head, norm=norm)
        check_head_state(head, vit.embed_dim, head_state, str(source.path))
        details = {
            "variant": encoder_name(vit.embed_dim),
            "registers": vit.num_register_tokens,
            "head": "da_dpt (Hugging Face DepthAnythingForDepthEstimation)",
            "blocks": list(layers),
            "norm": norm,
            "output": f"{output} x {max_depth:g}" + (" m" if metric else " (affine-invariant inverse depth)"),
            "max_depth": max_depth,
        }
        task = "depth" if metric else "relative_depth"
        return [
            ImportedModel(
                self.name, vit, encoder, task, head, head_state, input_size=INPUT_SIZE, details=details
            )
        ]


register(HuggingFaceDepthAnything())

"""Hugging Face DINOv2 linear segmentation: a `dinov2.*` Dinov2Model plus a 1x1 conv `classifier`.

This is the widely copied `Dinov2ForSemanticSegmentation` form: the backbone's last hidden state
(after its final LayerNorm), CLS and register tokens dropped, reshaped to the patch grid, a 1x1 conv
to class logits (`classifier.classifier.*`, or `classifier.*` when the conv is the attribute itself),
then bilinear upsampling (align_corners=False) to the input size. simokit's `linear` head computes
exactly that with layers=(-1,), no CLS, no BatchNorm and norm=True, so no head module of its own.

The class names come from config.json `id2label`; its count must equal the conv's output channels
(transformers' placeholder names LABEL_i count as no names: the classes become class_0, class_1...).
Positions are resampled with the official DINOv2 rule, like the `hf_dinov2` backbone (so experts and
their base agree): at the config's image_size the output equals transformers' bit for bit; at other
sizes transformers resamples straight to the grid (no 0.1 offset) and the values differ slightly.
"""

from __future__ import annotations

import json
from typing import Any

from torch import Tensor

from simokit.errors import CheckpointError
from simokit.models.convert import convert_hf_dinov2, vit_config_from_hf
from simokit.models.heads import HeadConfig
from simokit.models.importers.infer import official_encoder, variant_name
from simokit.models.importers.model import ImportedModel
from simokit.models.importers.registry import register
from simokit.models.importers.source import Source

_BACKBONE_PREFIXES = ("dinov2.", "dinov2_with_registers.")
_CONV_PREFIXES = ("classifier.classifier.", "classifier.")


def _classifier(tensors: dict[str, Tensor]) -> tuple[str, Tensor, Tensor | None] | None:
    """(prefix, weight, bias) of a 1x1 conv classifier, or None when the file has none."""
    for prefix in _CONV_PREFIXES:
        weight = tensors.get(prefix + "weight")
        if weight is not None and weight.dim() == 4 and tuple(weight.shape[2:]) == (1, 1):
            return prefix, weight, tensors.get(prefix + "bias")
    return None


def _classes(config: dict[str, Any], count: int, where: str) -> tuple[str, ...]:
    """Class names from id2label, ordered by id; their number must match the classifier's outputs."""
    id2label = config.get("id2label") or {}
    # transformers writes LABEL_0..LABEL_{n-1} (two by default) when no labels were given
    if all(str(label) == f"LABEL_{key}" for key, label in id2label.items()):
        return tuple(f"class_{i}" for i in range(count))
    if len(id2label) != count:
        raise CheckpointError(
            f"{where}: config.json id2label has {len(id2label)} classes but the classifier outputs {count}"
        )
    return tuple(str(label) for _, label in sorted(id2label.items(), key=lambda kv: int(kv[0])))


def _normalisation(source: Source) -> dict[str, Any]:
    """mean/std from a preprocessor_config.json beside the weights, when the folder has one."""
    path = source.path.parent / "preprocessor_config.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"cannot read {path}: {err}") from None
    out: dict[str, Any] = {}
    if len(data.get("image_mean") or ()) == 3 and len(data.get("image_std") or ()) == 3:
        out["mean"] = tuple(float(v) for v in data["image_mean"])
        out["std"] = tuple(float(v) for v in data["image_std"])
    return out


class HuggingFaceLinearSeg:
    """A Hugging Face folder holding a DINOv2 backbone and a 1x1 conv segmentation classifier."""

    name = "hf_dinov2_seg"
    description = "Hugging Face DINOv2 linear segmentation folder (dinov2.* + classifier 1x1 conv)"

    def detect(self, source: Source) -> bool:
        """A DINOv2 config.json, backbone weights under dinov2.* and a 1x1 conv classifier."""
        config = source.config or {}
        if config.get("model_type") not in ("dinov2", "dinov2_with_registers"):
            return False
        has_backbone = any(k.startswith(_BACKBONE_PREFIXES) for k in source.tensors)
        return has_backbone and _classifier(source.tensors) is not None

    def convert(self, source: Source) -> list[ImportedModel]:
        """One seg expert: the converted encoder and a linear head on the last block's patch tokens."""
        config = source.config or {}
        found = _classifier(source.tensors)
        if found is None:
            raise CheckpointError(
                f"{source.path}: no 1x1 conv classifier (classifier.weight of (K, C, 1, 1))"
            )
        prefix, weight, bias = found
        vit = vit_config_from_hf(config)
        if weight.shape[1] != vit.embed_dim:
            raise CheckpointError(
                f"{source.path}: classifier reads {weight.shape[1]} channels; the encoder has {vit.embed_dim}"
            )
        backbone = {k: v for k, v in source.tensors.items() if k.startswith(_BACKBONE_PREFIXES)}
        encoder = official_encoder(convert_hf_dinov2(backbone))
        classes = _classes(config, weight.shape[0], str(source.path))
        head = HeadConfig("linear", weight.shape[0], "none", layers=(-1,), use_cls=False, norm=True)
        state = {
            "conv.weight": weight,
            "conv.bias": bias if bias is not None else weight.new_zeros(len(weight)),
        }
        details = {
            "variant": variant_name(vit.embed_dim),
            "registers": vit.num_register_tokens,
            "head kind": "linear (1x1 conv on the patch tokens)",
            "classifier": prefix.rstrip("."),
            "blocks read": "last",
            "norm": "final LayerNorm applied",
            "CLS": "not used",
            "classes": len(classes),
            "output": "logits, bilinear to the input size",
        }
        size = int(config.get("image_size", vit.img_size))
        model = ImportedModel(
            self.name, vit, encoder, "seg", head, state, classes, (size, size), details=details,
            **_normalisation(source),
        )  # fmt: skip
        return [model]


register(HuggingFaceLinearSeg())

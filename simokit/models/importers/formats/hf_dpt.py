"""Hugging Face DPTForDepthEstimation folders with a DINOv2 backbone, as a dinov2_dpt depth expert.

The neck (readout, reassembly, fusion) and depth head are DINOv2's DPT with options: biased residual
convs (or BatchNorm), the 3x3 projection only with `add_projection`, a plain ReLU output, and the
prediction returned at the head's resolution (32 x ceil(grid / 2)), which is the native size; other
sizes are reached bilinearly (the image processor's post-processing uses bicubic, which exported
graphs do not reproduce exactly). The backbone reads `out_indices` stages (stage k is block
k - 1) after its final LayerNorm when `apply_layernorm` is set. Its position embeddings are resampled
as transformers does (no 0.1 offset), so the imported encoder returns what the source model computes.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from torch import Tensor

from simokit.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from simokit.errors import CheckpointError
from simokit.models.convert import convert_hf_dinov2, vit_config_from_hf
from simokit.models.heads import HeadConfig
from simokit.models.importers.formats.dpt_layout import checked_head_state, duplicate_add_readout, rename_keys
from simokit.models.importers.infer import official_encoder, variant_name
from simokit.models.importers.model import ImportedModel
from simokit.models.importers.registry import register
from simokit.models.importers.source import Source

HF_DPT_RENAMES = (
    (r"^neck\.reassemble_stage\.readout_projects\.(\d+)\.0\.", r"reassemble.\1.readout."),
    (r"^neck\.reassemble_stage\.layers\.(\d+)\.projection\.", r"reassemble.\1.project."),
    (r"^neck\.reassemble_stage\.layers\.(\d+)\.resize\.", r"reassemble.\1.resize."),
    (r"^neck\.convs\.(\d+)\.", r"convs.\1."),
    (r"^neck\.fusion_stage\.layers\.(\d+)\.projection\.", r"fusion.\1.out."),
    (
        r"^neck\.fusion_stage\.layers\.(\d+)\.residual_layer(\d)\.convolution(\d)\.",
        r"fusion.\1.unit\2.conv\3.",
    ),
    (r"^neck\.fusion_stage\.layers\.(\d+)\.residual_layer(\d)\.batch_norm(\d)\.", r"fusion.\1.unit\2.bn\3."),
    (r"^head\.projection\.", "project."),
    (r"^head\.head\.", "out."),
)
# the deepest fusion layer is called without a skip input, so its first residual layer is never used
_UNUSED = "neck.fusion_stage.layers.0.residual_layer1."


def _refuse_unsupported(config: dict[str, Any], where: str) -> dict[str, Any]:
    """The backbone config, after checking the model is a DINOv2 DPT this importer reproduces."""
    backbone = config.get("backbone_config") or {}
    kind = backbone.get("model_type") or ("ViT hybrid" if config.get("is_hybrid") else "plain ViT")
    if kind != "dinov2":
        raise CheckpointError(
            f"{where}: DPT with a {kind} backbone is not supported; only DPT with a DINOv2 backbone (dinov2)"
        )
    arch = (config.get("architectures") or ["DPTForDepthEstimation"])[0]
    checks = {
        f"architecture {arch}": arch == "DPTForDepthEstimation",
        "backbone reshape_hidden_states": not backbone.get("reshape_hidden_states", True),
        f"readout_type {config.get('readout_type')}": config.get("readout_type", "project")
        in ("project", "add", "ignore"),
        f"hidden_act {config.get('hidden_act')}": config.get("hidden_act", "gelu") == "gelu",
        f"reassemble_factors {config.get('reassemble_factors')}": [
            float(f) for f in config.get("reassemble_factors", (4, 2, 1, 0.5))
        ]
        == [4.0, 2.0, 1.0, 0.5],
        f"head_in_index {config.get('head_in_index')}": config.get("head_in_index", -1) in (-1, 3),
    }
    bad = [name for name, ok in checks.items() if not ok]
    if bad:
        raise CheckpointError(f"{where}: this DPT differs from DPTForDepthEstimation on DINOv2 in {bad[0]}")
    return dict(backbone)


def _blocks(backbone: dict[str, Any], where: str) -> tuple[int, ...]:
    """Encoder block indices of the backbone's out_indices (stage k is the output of block k - 1)."""
    stages = backbone.get("out_indices")
    if stages is None:
        stages = [int(str(name).removeprefix("stage")) for name in backbone.get("out_features") or []]
    if len(stages) != 4 or min(stages) < 1:
        raise CheckpointError(f"{where}: the DPT reads stages {list(stages)}; expected 4 block outputs")
    return tuple(int(s) - 1 for s in stages)


def hf_dpt_head(
    config: dict[str, Any], state: dict[str, Tensor], where: str
) -> tuple[HeadConfig, dict[str, Tensor]]:
    """A DPTForDepthEstimation config.json dict and its non-backbone weights as a dinov2_dpt head."""
    backbone = _refuse_unsupported(config, where)
    readout = config.get("readout_type", "project")
    batch_norm = bool(config.get("use_batch_norm_in_fusion_residual") or False)
    bias = config.get("use_bias_in_fusion_residual")
    options = {
        "readout": readout,
        "post_channels": [int(c) for c in config.get("neck_hidden_sizes", (96, 192, 384, 768))],
        "output": "depth",
        "min_depth": 0.0,
        "max_depth": None,
        "residual_bias": (not batch_norm) if bias is None else bool(bias),
        "fusion_bn": batch_norm,
        "project": bool(config.get("add_projection", False)),
        "native": "head",
        "patch_size": int(backbone.get("patch_size", 14)),
    }
    head = HeadConfig(
        kind="dinov2_dpt",
        out_channels=1,
        layers=_blocks(backbone, where),
        use_cls=readout != "ignore",
        dpt_features=int(config.get("fusion_hidden_size", 256)),
        norm=bool(backbone.get("apply_layernorm", True)),
        options=options,
    )
    used = {k: v for k, v in state.items() if not k.startswith(_UNUSED)}
    renamed = rename_keys(used, HF_DPT_RENAMES, where)
    if readout == "add":
        renamed = duplicate_add_readout(renamed)
    return head, checked_head_state(head, int(backbone["hidden_size"]), renamed, where)


def processor_normalisation(source: Source) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std on [0, 1] images from the folder's image processor, else ImageNet's (DINOv2's).

    The processor normalises pixels in 0..255 times `rescale_factor` when `do_rescale` is set, in
    0..255 otherwise (the converted DINOv2 DPTs), so its values are divided by that pixel scale.
    """
    path = source.path.parent / "preprocessor_config.json"
    if not path.is_file():
        return IMAGENET_MEAN, IMAGENET_STD
    try:
        processor = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"cannot read {path}: {err}") from None
    if not processor.get("do_normalize", True):
        return (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    rescale = float(processor.get("rescale_factor", 1 / 255)) if processor.get("do_rescale", True) else 1.0
    scale = 255.0 * rescale
    # the DPT image processor's own defaults are 0.5 and 0.5 on rescaled pixels
    mean = processor.get("image_mean", [0.5 * scale] * 3)
    std = processor.get("image_std", [0.5 * scale] * 3)
    return tuple(float(m) / scale for m in mean), tuple(float(s) / scale for s in std)


class HuggingFaceDPT:
    """A Hugging Face DPTForDepthEstimation folder whose backbone is a Dinov2Backbone."""

    name = "hf_dpt"
    description = "Hugging Face DPTForDepthEstimation folder with a DINOv2 backbone (save_pretrained)"

    def detect(self, source: Source) -> bool:
        """A config.json of model_type dpt."""
        return (source.config or {}).get("model_type") == "dpt"

    def convert(self, source: Source) -> list[ImportedModel]:
        """One depth expert: the DINOv2 backbone and the neck + depth head."""
        config, where = source.config or {}, str(source.path.parent)
        backbone_state = source.state_dict("backbone.")
        rest = {k: v for k, v in source.tensors.items() if not k.startswith("backbone.")}
        head, head_state = hf_dpt_head(config, rest, where)
        vit = dataclasses.replace(vit_config_from_hf(config["backbone_config"]), interpolate_offset=0.0)
        encoder = official_encoder(convert_hf_dinov2(backbone_state))
        mean, std = processor_normalisation(source)
        details = {
            "variant": variant_name(vit.embed_dim),
            "registers": vit.num_register_tokens,
            "head": f"dinov2_dpt (Hugging Face DPT, readout {head.options['readout']})",
            "blocks": list(head.layers),
            "norm": head.norm,
            "output": "relu depth at the head's resolution (32 x ceil(grid / 2))",
        }
        image = int(config["backbone_config"].get("image_size", 518))
        return [
            ImportedModel(
                self.name,
                vit,
                encoder,
                task="depth",
                head=head,
                head_state=head_state,
                input_size=(image, image),
                mean=(mean[0], mean[1], mean[2]),
                std=(std[0], std[1], std[2]),
                details=details,
            )
        ]


register(HuggingFaceDPT())

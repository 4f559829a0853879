"""Bare DINOv2 backbones: the official hub `.pth` (dinov2_vit*14[_reg4]_pretrain) and HF Dinov2Model."""

from __future__ import annotations

from simokit.models.convert import convert_hf_dinov2, vit_config_from_hf
from simokit.models.importers.infer import infer_vit_config, official_encoder, variant_name
from simokit.models.importers.model import ImportedModel
from simokit.models.importers.registry import register
from simokit.models.importers.source import Source

_HF_TYPES = ("dinov2", "dinov2_with_registers")


class OfficialBackbone:
    """A state dict with official DINOv2 encoder keys at the top level and nothing else."""

    name = "dinov2"
    description = "official DINOv2 backbone (.pth from the dinov2 hub: cls_token, pos_embed, blocks.*)"

    def detect(self, source: Source) -> bool:
        """Official encoder keys at the top level."""
        keys = source.tensors
        return "cls_token" in keys and "pos_embed" in keys and any(k.startswith("blocks.") for k in keys)

    def convert(self, source: Source) -> list[ImportedModel]:
        """One base encoder."""
        state = official_encoder(source.tensors)
        vit = infer_vit_config(state)
        details = {"variant": variant_name(vit.embed_dim), "registers": vit.num_register_tokens}
        return [ImportedModel(self.name, vit, state, details=details)]


class HuggingFaceBackbone:
    """A Hugging Face Dinov2Model / Dinov2WithRegistersModel folder (config.json + weights)."""

    name = "hf_dinov2"
    description = "Hugging Face Dinov2Model or Dinov2WithRegistersModel folder (save_pretrained)"

    def detect(self, source: Source) -> bool:
        """A config.json of a DINOv2 backbone and only backbone weights."""
        config = source.config or {}
        archs = config.get("architectures") or ["Dinov2Model"]
        return config.get("model_type") in _HF_TYPES and archs[0] in (
            "Dinov2Model",
            "Dinov2WithRegistersModel",
        )

    def convert(self, source: Source) -> list[ImportedModel]:
        """One base encoder, its architecture from config.json."""
        vit = vit_config_from_hf(source.config or {})
        state = official_encoder(convert_hf_dinov2(source.tensors))
        details = {"variant": variant_name(vit.embed_dim), "registers": vit.num_register_tokens}
        return [ImportedModel(self.name, vit, state, details=details)]


register(OfficialBackbone())
register(HuggingFaceBackbone())

"""Read encoder checkpoints and convert each known source layout to the official DINOv2 key layout."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from simokit.errors import CheckpointError, ConfigError
from simokit.models.vit import VitConfig

StateDict = dict[str, Tensor]
SourceFormat = Literal["official", "hf"]

# Prefixes under which Hugging Face task models (e.g. Dinov2ForImageClassification) nest the backbone.
_HF_PREFIXES = ("dinov2.", "dinov2_with_registers.")
# Containers that training scripts wrap a state dict in.
_WRAPPER_KEYS = ("state_dict", "model")

# Hugging Face per-layer names -> official names; both the on-disk (hub) spelling and the in-memory
# spelling of recent transformers releases, which renamed the modules when loading.
_HF_LAYER_RENAMES = {
    "norm1": "norm1",
    "norm2": "norm2",
    "attention.output.dense": "attn.proj",
    "attention.o_proj": "attn.proj",
    "layer_scale1.lambda1": "ls1.gamma",
    "layer_scale2.lambda1": "ls2.gamma",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
    "mlp.weights_in": "mlp.w12",
    "mlp.weights_out": "mlp.w3",
    "mlp.down_proj": "mlp.w3",
}
_HF_GLOBAL_RENAMES = {
    "embeddings.cls_token": "cls_token",
    "embeddings.mask_token": "mask_token",
    "embeddings.register_tokens": "register_tokens",
    "embeddings.position_embeddings": "pos_embed",
    "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
    "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
    "layernorm.weight": "norm.weight",
    "layernorm.bias": "norm.bias",
}
# Pieces that are concatenated along the output dimension, in the official row order.
_HF_CONCATS = {
    "attn.qkv": (
        ("attention.attention.query", "attention.attention.key", "attention.attention.value"),
        ("attention.q_proj", "attention.k_proj", "attention.v_proj"),
    ),
    "mlp.w12": (("mlp.gate_proj", "mlp.up_proj"),),
}
_HF_CONCAT_SOURCES = {
    name: (target, group) for target, groups in _HF_CONCATS.items() for group in groups for name in group
}
_HF_LAYER_KEY = re.compile(r"^encoder\.layer\.(\d+)\.(.+)\.(weight|bias|lambda1)$")


def detect_format(state_dict: Mapping[str, Any]) -> SourceFormat:
    """Name the key layout of an encoder state dict: "official" (dinov2 hub) or "hf" (transformers)."""
    keys = list(state_dict)
    if any(k.startswith(("embeddings.", "encoder.layer.")) or k.startswith(_HF_PREFIXES) for k in keys):
        return "hf"
    if "cls_token" in state_dict and any(k.startswith("blocks.") for k in keys):
        return "official"
    raise CheckpointError(
        f"state dict is neither an official DINOv2 nor a Hugging Face Dinov2Model layout "
        f"(first keys: {keys[:5]}); export the encoder weights only"
    )


def _strip_hf_prefix(state_dict: Mapping[str, Tensor]) -> StateDict:
    for prefix in _HF_PREFIXES:
        if any(k.startswith(prefix) for k in state_dict):
            # keys outside the backbone (e.g. a classifier) are not encoder weights
            return {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}
    return dict(state_dict)


def convert_hf_dinov2(hf_state_dict: Mapping[str, Tensor]) -> StateDict:
    """Convert a Hugging Face Dinov2Model / Dinov2WithRegistersModel state dict to the official layout."""
    source = _strip_hf_prefix(hf_state_dict)
    out: StateDict = {}
    # (block, official target, source group, leaf) -> the group's tensors in official row order
    pieces: dict[tuple[int, str, tuple[str, ...], str], list[Tensor | None]] = {}
    unknown: list[str] = []
    for key, value in source.items():
        if key in _HF_GLOBAL_RENAMES:
            out[_HF_GLOBAL_RENAMES[key]] = value
            continue
        match = _HF_LAYER_KEY.match(key)
        if match is None:
            unknown.append(key)
            continue
        index, module, leaf = int(match.group(1)), match.group(2), match.group(3)
        if leaf == "lambda1":
            module, leaf = f"{module}.lambda1", ""
        if module in _HF_LAYER_RENAMES:
            out[f"blocks.{index}.{_HF_LAYER_RENAMES[module]}" + (f".{leaf}" if leaf else "")] = value
        elif module in _HF_CONCAT_SOURCES:
            target, group = _HF_CONCAT_SOURCES[module]
            slot = pieces.setdefault((index, target, group, leaf), [None] * len(group))
            slot[group.index(module)] = value
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointError(
            f"Hugging Face DINOv2 state dict has keys this converter does not know: {sorted(unknown)[:8]}; "
            "only Dinov2Model / Dinov2WithRegistersModel backbones are supported"
        )
    for (index, target, group, leaf), parts in pieces.items():
        present = [p for p in parts if p is not None]
        if len(present) != len(parts):
            raise CheckpointError(
                f"encoder.layer.{index} has only some of {list(group)} ({leaf}); the checkpoint is incomplete"
            )
        out[f"blocks.{index}.{target}.{leaf}"] = torch.cat(present, dim=0)
    return out


def to_official(state_dict: Mapping[str, Tensor]) -> StateDict:
    """Return `state_dict` in the official layout, converting it when it comes from another source."""
    if detect_format(state_dict) == "hf":
        return convert_hf_dinov2(state_dict)
    return dict(state_dict)


def vit_config_from_hf(config: Mapping[str, Any]) -> VitConfig:
    """Build a VitConfig from a Hugging Face Dinov2 / Dinov2WithRegisters config.json dict."""
    model_type = config.get("model_type", "dinov2")
    if model_type not in ("dinov2", "dinov2_with_registers"):
        raise ConfigError(
            f"config.json has model_type '{model_type}'; expected dinov2 or dinov2_with_registers"
        )
    if config.get("hidden_act", "gelu") != "gelu":
        raise ConfigError(
            f"config.json hidden_act '{config.get('hidden_act')}' is not supported; only gelu is"
        )
    registers = int(config.get("num_register_tokens", 0) or 0)
    image_size = config.get("image_size", 518)
    patch_size = config.get("patch_size", 14)
    if isinstance(image_size, list | tuple) or isinstance(patch_size, list | tuple):
        raise ConfigError(
            "config.json has a non-square image_size or patch_size; only square ones are supported"
        )
    try:
        return VitConfig(
            img_size=int(image_size),
            patch_size=int(patch_size),
            in_chans=int(config.get("num_channels", 3)),
            embed_dim=int(config["hidden_size"]),
            depth=int(config["num_hidden_layers"]),
            num_heads=int(config["num_attention_heads"]),
            mlp_ratio=float(config.get("mlp_ratio", 4.0)),
            qkv_bias=bool(config.get("qkv_bias", True)),
            ffn="swiglu" if config.get("use_swiglu_ffn", False) else "mlp",
            init_values=float(config.get("layerscale_value", 1.0)),
            num_register_tokens=registers,
            # A Hugging Face model is what transformers runs: it resamples position embeddings straight
            # to the target grid (no offset); register models also antialias, as the official ones do.
            # The official models without registers use a 0.1 offset instead (infer_vit_config); the
            # two differ only at sizes other than image_size, and merging keeps the base's rule.
            interpolate_antialias=registers > 0,
            interpolate_offset=0.0,
            layer_norm_eps=float(config.get("layer_norm_eps", 1e-6)),
        )
    except KeyError as err:
        raise ConfigError(f"config.json lacks required field {err}; is it a Dinov2 config?") from None


def _unwrap(obj: Any, path: Path) -> tuple[VitConfig | None, StateDict]:
    """Find the state dict (and a stored VitConfig, if any) inside a loaded `.pth` object."""
    config: VitConfig | None = None
    if isinstance(obj, Mapping):
        stored = obj.get("vit_config", obj.get("encoder_config"))
        if isinstance(stored, Mapping):
            try:
                config = VitConfig.from_dict(dict(stored))
            except ConfigError as err:
                raise CheckpointError(f"{path} stores an invalid encoder config: {err}") from err
        for key in _WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, Tensor) for v in inner.values()):
                return config, dict(inner)
        if obj and all(isinstance(v, Tensor) for v in obj.values()):
            return config, dict(obj)
    raise CheckpointError(
        f"{path} holds no state dict of tensors; save model.state_dict() or a dict with a 'state_dict' entry"
    )


def _hf_config_beside(path: Path) -> VitConfig | None:
    config_path = path.parent / "config.json"
    if not config_path.is_file():
        return None
    try:
        data = json.loads(config_path.read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"cannot read {config_path}: {err}") from err
    if data.get("model_type") not in ("dinov2", "dinov2_with_registers"):
        return None
    return vit_config_from_hf(data)


def load_encoder_weights(path: str | Path) -> tuple[VitConfig | None, StateDict]:
    """Load encoder weights from a `.pth`/`.pt`, a `.safetensors` file or a Hugging Face model folder.

    Returns the architecture when the file (or a Hugging Face config.json beside it) records it, else
    None, and the state dict converted to the official DINOv2 layout.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "model.safetensors"
    if not path.is_file():
        raise CheckpointError(f"encoder checkpoint {path} does not exist; check the path")
    config: VitConfig | None
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as handle:
                state_dict = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
                metadata = handle.metadata() or {}
        except Exception as err:  # safetensors raises its own error types for corrupt headers
            raise CheckpointError(f"cannot read {path} as safetensors ({err}); the file is corrupt") from err
        config = None
        if "vit_config" in metadata:
            try:
                config = VitConfig.from_dict(json.loads(metadata["vit_config"]))
            except (ValueError, ConfigError) as err:
                raise CheckpointError(f"{path} has an unreadable vit_config entry: {err}") from err
        if config is None:
            config = _hf_config_beside(path)
    elif path.suffix in (".pth", ".pt", ".bin"):
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # pickle, zip and torch errors all mean the same thing here
            raise CheckpointError(f"cannot read {path} with torch.load ({err}); the file is corrupt") from err
        config, state_dict = _unwrap(obj, path)
    else:
        raise CheckpointError(f"{path} has an unknown extension; use .pth, .pt, .bin or .safetensors")
    return config, to_official(state_dict)

"""Read a checkpoint file or Hugging Face folder into tensors and plain values, never running pickled code."""

from __future__ import annotations

import json
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from simokit.errors import CheckpointError

if TYPE_CHECKING:
    from simokit.models.importers.model import ImportedModel

_HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


@dataclass
class Source:
    """A loaded checkpoint: its top-level object, every tensor by dotted key, and a config.json if any.

    `top` is what torch.load returned (dicts, lists, strings, numbers and tensors only); `tensors`
    flattens nested dicts of tensors to dotted keys ("state_dict.backbone.blocks.0.norm1.weight").
    `backbone` is the encoder the user named with `--backbone`, for head files that hold none.
    """

    path: Path
    top: Any
    tensors: dict[str, Tensor]
    config: dict[str, Any] | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    backbone: ImportedModel | None = None

    def top_keys(self) -> list[str]:
        """The top-level keys (for error messages), or the object's type name when it is not a dict."""
        if isinstance(self.top, Mapping):
            return [str(k) for k in self.top]
        return [type(self.top).__name__]

    def state_dict(self, prefix: str = "") -> dict[str, Tensor]:
        """The tensors under `prefix` (e.g. "state_dict."), with the prefix removed."""
        return {k[len(prefix) :]: v for k, v in self.tensors.items() if k.startswith(prefix)}


def _flatten(obj: Any, prefix: str, out: dict[str, Tensor]) -> None:
    if isinstance(obj, Tensor):
        out[prefix[:-1]] = obj
    elif isinstance(obj, Mapping):
        for key, value in obj.items():
            _flatten(value, f"{prefix}{key}.", out)


def _read_safetensors(path: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
            return tensors, dict(handle.metadata() or {})
    except Exception as err:  # safetensors raises its own error types for corrupt headers
        raise CheckpointError(f"cannot read {path} as safetensors ({err}); the file is corrupt") from None


def _read_pickle(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"{path} needs arbitrary code to unpickle, which simokit never runs ({first[:160]}); "
            "re-save it with torch.save(model.state_dict()) or as safetensors"
        ) from None
    except Exception as err:  # zip, pickle and torch errors all mean the file cannot be read
        raise CheckpointError(
            f"cannot read {path} with torch.load ({type(err).__name__}); corrupt?"
        ) from None


def read_source(path: str | Path) -> Source:
    """Load `path`: a .pth/.pt/.bin/.safetensors file or a Hugging Face `save_pretrained` folder."""
    path = Path(path)
    config: dict[str, Any] | None = None
    if path.is_dir():
        config_path = path / "config.json"
        if config_path.is_file():
            try:
                config = json.loads(config_path.read_text())
            except (OSError, ValueError) as err:
                raise CheckpointError(f"cannot read {config_path}: {err}") from None
        weights = next((path / n for n in _HF_WEIGHTS if (path / n).is_file()), None)
        if weights is None:
            raise CheckpointError(f"{path} is a folder without {' or '.join(_HF_WEIGHTS)}")
        path = weights
    elif not path.is_file():
        raise CheckpointError(f"{path} does not exist; check the path")
    if path.suffix == ".safetensors":
        tensors, metadata = _read_safetensors(path)
        return Source(path, tensors, tensors, config, metadata)
    if path.suffix not in (".pth", ".pt", ".bin", ".ckpt"):
        raise CheckpointError(f"{path} has an unknown extension; use .pth, .pt, .bin, .ckpt or .safetensors")
    top = _read_pickle(path)
    flat: dict[str, Tensor] = {}
    _flatten(top, "", flat)
    return Source(path, top, flat, config)

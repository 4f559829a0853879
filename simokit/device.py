"""Where build-side computation runs: 'cpu', 'cuda' (or 'cuda:N') or 'auto' (CUDA when present).

The merge study uses it for AdaMerging's optimisation and for every encoder pass (evaluation,
TAP and re-alignment features); merge arithmetic, least-squares fits and checkpoints stay on CPU.
Robot-side code never imports this (it would import torch).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from simokit.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    """The torch device for `name`; ConfigError (one line) when it is unknown or not present."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device '{name}': this torch has no usable CUDA GPU ({torch.__version__}); "
                "use device: cpu or auto, or install a CUDA build of torch"
            )
        return torch.device(name)
    raise ConfigError(f"device '{name}' unknown; choose from {', '.join(DEVICES)} (or cuda:N)")


def on_device(module: nn.Module, device: torch.device) -> nn.Module:
    """`module` itself on CPU, else a copy moved to `device` (callers' modules, often sharing heads
    with other models, stay where they are)."""
    return module if device.type == "cpu" else copy.deepcopy(module).to(device)

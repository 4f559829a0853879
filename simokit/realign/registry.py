"""The one registry of re-aligners, keyed by `RealignMode`; `@register(mode)` is the only way in."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TypeVar

from simokit.errors import ConfigError
from simokit.realign.base import Realigner
from simokit.recipe import RealignMode

_REALIGNERS: dict[str, Realigner] = {}
BUILTIN_MODULES = ("simokit.realign.least_squares", "simokit.realign.finetune", "simokit.realign.lora")
R = TypeVar("R", bound=Realigner)


def register(mode: RealignMode) -> Callable[[R], R]:
    """Decorator adding a re-aligner under `mode`; a mode already taken raises ConfigError."""

    def add(fit: R) -> R:
        if mode.value in _REALIGNERS:
            owner = _REALIGNERS[mode.value]
            raise ConfigError(
                f"re-aligner '{mode.value}' is already registered by "
                f"{getattr(owner, '__module__', '?')}.{getattr(owner, '__qualname__', owner)}"
            )
        _REALIGNERS[mode.value] = fit
        return fit

    return add


def _load_builtins() -> None:
    # Importing a module runs its @register (once); deferred because the modules import this one.
    for module in BUILTIN_MODULES:
        importlib.import_module(module)


def available_realigners() -> tuple[str, ...]:
    """The registered re-alignment modes, in `RealignMode` order."""
    _load_builtins()
    return tuple(m for m in RealignMode.names() if m in _REALIGNERS)


def get_realigner(name: str) -> Realigner:
    """The re-aligner registered as `name`; unknown names raise ConfigError listing the valid ones."""
    _load_builtins()
    if name not in _REALIGNERS:
        raise ConfigError(f"unknown re-alignment mode '{name}'; valid: {', '.join(available_realigners())}")
    return _REALIGNERS[name]

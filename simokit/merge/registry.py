"""The one registry of merge methods; `@register` on a MergeMethod subclass is the only way in.

Grid methods and learned ones (`simokit.merge.learned`, which learn part of their hyper-parameters
before they merge) share it.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any, TypeVar

from simokit.errors import ConfigError
from simokit.merge.methods.base import MergeMethod, MergeSetup

_METHODS: dict[str, type[MergeMethod[Any]]] = {}
BUILTIN_MODULES = (
    *(
        f"simokit.merge.methods.{name}"
        for name in (
            "task_arithmetic",
            "average",
            "zeroshot",
            "ties",
            "tall_mask",
            "consensus",
            "dare",
            "breadcrumbs",
            "star",
            "tsv",
            "lines",
            "normavg",
        )
    ),
    "simokit.merge.learned.adamerging",
)
M = TypeVar("M", bound=type[MergeMethod[Any]])


def register(cls: M) -> M:
    """Class decorator adding a method under `cls.name`; a name already taken raises ConfigError."""
    if not cls.name:
        raise ConfigError(f"merge method class {cls.__qualname__} has no `name`; set the class attribute")
    if cls.name in _METHODS:
        owner = _METHODS[cls.name]
        raise ConfigError(
            f"merge method '{cls.name}' is already registered by {owner.__module__}.{owner.__qualname__}; "
            "choose another name"
        )
    _METHODS[cls.name] = cls
    return cls


def _load_builtins() -> None:
    # Importing a module runs its @register (once); deferred because the modules import this one.
    for module in BUILTIN_MODULES:
        importlib.import_module(module)


def available_methods() -> tuple[str, ...]:
    """Return the registered method names, sorted."""
    _load_builtins()
    return tuple(sorted(_METHODS))


def get_method(name: str) -> type[MergeMethod[Any]]:
    """Return the method class called `name`; unknown names raise ConfigError with the closest match."""
    _load_builtins()
    if name in _METHODS:
        return _METHODS[name]
    close = difflib.get_close_matches(name, list(_METHODS), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise ConfigError(f"unknown merge method '{name}'{hint}; valid methods: {', '.join(sorted(_METHODS))}")


def build_method(name: str, setup: MergeSetup, **hparams: Any) -> MergeMethod[Any]:
    """Look up `name` and build it with validated hyper-parameters for this merge's setup."""
    return get_method(name).create(setup, **hparams)

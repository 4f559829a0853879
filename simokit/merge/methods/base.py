"""The contract of a merge method: validated hyper-parameters, a search grid and a two-pass merge.

A merge runs `stat_passes` statistics passes (each calls `observe` on every floating-point tensor,
then `end_pass`) and one merge pass calling `merge_tensor` per tensor. Keeping global statistics
(e.g. a TIES threshold over the whole task vector) in the passes lets the in-memory API and the
streaming API share every method unchanged.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Generic, TypeVar

import torch
from torch import Tensor

from simokit.errors import ConfigError


@dataclass(frozen=True)
class MergeParams:
    """Base of every method's frozen hyper-parameter dataclass; subclasses validate in __post_init__."""


@dataclass(frozen=True)
class MergeSetup:
    """What a method may depend on besides its hyper-parameters: T experts and the encoder depth."""

    num_experts: int
    depth: int


P = TypeVar("P", bound=MergeParams)


def check_number(
    method: str,
    name: str,
    value: object,
    low: float,
    high: float,
    *,
    open_low: bool = False,
    open_high: bool = False,
) -> None:
    """Raise ConfigError unless `value` is a real number in [low, high] (ends optionally open)."""
    real = isinstance(value, (int, float)) and not isinstance(value, bool)
    number = float(value) if isinstance(value, (int, float)) and real else math.nan
    above = number > low if open_low else number >= low
    below = number < high if open_high else number <= high
    if not (above and below):
        span = f"{'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}"
        raise ConfigError(f"merge method '{method}': {name}={value!r} must be a number in {span}")


def check_int(method: str, name: str, value: object, low: int) -> None:
    """Raise ConfigError unless `value` is an integer ≥ low."""
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(f"merge method '{method}': {name}={value!r} must be an integer >= {low}")


def steps(start: float, stop: float, step: float) -> list[float]:
    """Return start, start+step, …, stop rounded to 4 decimals (for readable grid values)."""
    count = round((stop - start) / step)
    return [round(start + i * step, 4) for i in range(count + 1)]


class MergeMethod(ABC, Generic[P]):
    """A task-vector merge: `merge_tensor` maps one tensor's task vectors to the merged θ − θ0."""

    name: ClassVar[str] = ""
    params_type: ClassVar[type[MergeParams]] = MergeParams

    def __init__(self, params: P, setup: MergeSetup) -> None:
        self.params = params
        self.setup = setup

    @classmethod
    def hparam_names(cls) -> tuple[str, ...]:
        """Names of the hyper-parameters this method accepts."""
        return tuple(f.name for f in fields(cls.params_type))

    @classmethod
    def params_from(cls, hparams: dict[str, Any]) -> MergeParams:
        """Validated hyper-parameters; unknown names raise ConfigError listing the valid ones."""
        valid = cls.hparam_names()
        unknown = sorted(set(hparams) - set(valid))
        if unknown:
            listed = ", ".join(valid) or "none"
            raise ConfigError(
                f"merge method '{cls.name}' has no hyper-parameter {', '.join(unknown)}; valid: {listed}"
            )
        return cls.params_type(**hparams)

    @classmethod
    def create(cls, setup: MergeSetup, **hparams: Any) -> MergeMethod[Any]:
        """Validate `hparams` (unknown names raise ConfigError listing the valid ones) and build."""
        method = cls(cls.params_from(hparams), setup)  # type: ignore[arg-type]
        method.check_setup()
        return method

    @classmethod
    def grid(cls) -> list[dict[str, Any]]:
        """Candidate hyper-parameter dicts for a grid search (defaults fill what a dict leaves out)."""
        return [{}]

    def check_setup(self) -> None:
        """Refuse hyper-parameters that do not fit this merge's expert count or depth."""

    @property
    def stat_passes(self) -> int:
        """Number of statistics passes over all tensors before the merge pass."""
        return 0

    def observe(self, pass_index: int, key: str, taus: list[Tensor]) -> None:
        """Accumulate statistics of one tensor's T task vectors (each the tensor's shape)."""

    def end_pass(self, pass_index: int) -> None:
        """Finish statistics pass `pass_index` after every tensor was observed."""

    @abstractmethod
    def merge_tensor(self, key: str, taus: list[Tensor]) -> Tensor:
        """Return the merged update θ − θ0 for one tensor from its T task vectors (same shape)."""

    def task_contributions(self, key: str, taus: list[Tensor]) -> Tensor:
        """(T, ...) each task's share of this tensor's update before the method combines and scales
        them: the task vectors themselves unless a method trims, masks or elects first."""
        return torch.stack(taus)

"""Optimisation-profile shapes: min/opt/max for the dynamic batch and, if exported so, height/width.

TensorRT builds kernels for a range of input shapes given as one (min, opt, max) triple per
input; it is fastest at `opt` and refuses shapes outside [min, max] at run time. The bundle's
input is (B, H, W, 3) uint8 or (B, 3, H, W) float; dynamic axes show up as -1 (TensorRT), None
or a name (ONNX).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from simokit.errors import ConfigError, ShapeError

Dim = int | str | None
Shape = tuple[int, ...]


@dataclass(frozen=True)
class Range:
    """min <= opt <= max, all >= 1: one dynamic axis of the profile."""

    min: int
    opt: int
    max: int

    def __post_init__(self) -> None:
        if not 1 <= self.min <= self.opt <= self.max:
            raise ConfigError(f"profile range {self.text()} must satisfy 1 <= min <= opt <= max")

    @classmethod
    def parse(cls, text: str, what: str = "batch") -> Range:
        """'1,4,8' -> Range(1, 4, 8); a single number 'n' means n,n,n (a fixed size)."""
        try:
            parts = [int(p) for p in text.split(",")]
        except ValueError:
            raise ConfigError(f"--{what} '{text}' must be integers 'min,opt,max' or one integer") from None
        if len(parts) == 1:
            parts *= 3
        if len(parts) != 3:
            raise ConfigError(f"--{what} '{text}' must be 'min,opt,max' (three integers) or one integer")
        return cls(*parts)

    def text(self) -> str:
        """'min,opt,max' as the CLI takes it."""
        return f"{self.min},{self.opt},{self.max}"


@dataclass(frozen=True)
class Profile:
    """The (min, opt, max) shapes of one input tensor."""

    input: str
    min: Shape
    opt: Shape
    max: Shape

    @property
    def fixed(self) -> bool:
        """True when every shape is the same, so one CUDA graph covers all runs."""
        return self.min == self.max

    def contains(self, shape: Sequence[int]) -> bool:
        """True when `shape` lies within [min, max] on every axis."""
        return len(shape) == len(self.min) and all(
            lo <= s <= hi for lo, s, hi in zip(self.min, shape, self.max, strict=True)
        )

    def shapes(self) -> tuple[Shape, Shape, Shape]:
        """(min, opt, max)."""
        return self.min, self.opt, self.max

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly form for the engine sidecar."""
        return {"input": self.input, "min": list(self.min), "opt": list(self.opt), "max": list(self.max)}


DEFAULT_BATCH = Range(1, 1, 8)


def hw_axes(layout: str) -> tuple[int, int]:
    """Indices of height and width: 'uint8' inputs are (B, H, W, 3), 'float' ones (B, 3, H, W)."""
    if layout == "uint8":
        return 1, 2
    if layout == "float":
        return 2, 3
    raise ConfigError(f"input layout '{layout}' is not 'uint8' or 'float'")


def profile_for(
    name: str,
    shape: Sequence[Dim],
    layout: str,
    batch: Range | None = None,
    height: Range | None = None,
    width: Range | None = None,
    multiple: int = 14,
) -> Profile:
    """The profile for an input of `shape` (dynamic axes as -1/None/name) and `layout`.

    Ranges left as None take the default (batch DEFAULT_BATCH) on a dynamic axis and the fixed
    size on a fixed one; a range given for a fixed axis must equal its size, and dynamic
    height/width need a range of multiples of `multiple` (the ViT patch size).
    """
    if len(shape) != 4:
        raise ShapeError(f"input '{name}' has shape {list(shape)}; a bundle input has 4 axes")
    h_axis, w_axis = hw_axes(layout)
    given = {0: batch, h_axis: height, w_axis: width}
    labels = {0: "batch", h_axis: "height", w_axis: "width"}
    axes = [
        _axis_range(name, axis, dim, given.get(axis), labels.get(axis), multiple)
        for axis, dim in enumerate(shape)
    ]
    return Profile(name, tuple(r.min for r in axes), tuple(r.opt for r in axes), tuple(r.max for r in axes))


def _axis_range(name: str, axis: int, dim: Dim, rng: Range | None, label: str | None, multiple: int) -> Range:
    if isinstance(dim, int) and dim >= 0:
        if rng is not None and rng != Range(dim, dim, dim):
            raise ConfigError(
                f"input '{name}' has a fixed {label} of {dim}; the range {rng.text()} cannot apply"
            )
        return Range(dim, dim, dim)
    if label is None:
        raise ShapeError(f"input '{name}' axis {axis} is dynamic; only batch, height and width may be")
    if rng is None:
        if axis == 0:
            return DEFAULT_BATCH
        raise ConfigError(f"input '{name}' has a dynamic {label}; give its range, e.g. --{label} 224,448,448")
    if axis != 0 and any(v % multiple for v in (rng.min, rng.opt, rng.max)):
        raise ConfigError(f"{label} range {rng.text()} must be multiples of {multiple}")
    return rng

"""Optimisation-profile shapes: min/opt/max for the dynamic batch and, if exported so, height/width.

TensorRT builds kernels for a range of input shapes given as one (min, opt, max) triple per
input; it is fastest at `opt` and refuses shapes outside [min, max] at run time. The bundle's
input is (B, H, W, 3) uint8 or (B, 3, H, W) float; dynamic axes show up as -1 (TensorRT), None
or a name (ONNX). A frame-IO graph takes camera frames of any height and width: its profile spans
frame sizes (FRAME_MIN..FRAME_MAX by default) instead of multiples of the patch size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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


# Frame IO: the graph takes camera frames of any size, so the profile spans frame sizes, not multiples of 14.
FrameSize = tuple[int, int]
FRAME_MIN: FrameSize = (64, 64)
FRAME_OPT: FrameSize = (720, 1280)
FRAME_MAX: FrameSize = (2160, 3840)


def parse_frame_size(text: str, what: str) -> FrameSize:
    """'720x1280' -> (720, 1280): height x width in pixels; anything else raises ConfigError naming --what."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ConfigError(f"--{what} '{text}' must be HEIGHTxWIDTH in pixels, e.g. 720x1280")
    return int(parts[0]), int(parts[1])


def frame_ranges(
    lo: FrameSize | None = None, opt: FrameSize | None = None, hi: FrameSize | None = None
) -> tuple[Range, Range]:
    """(height, width) ranges of a frame-IO profile.

    Sizes not given take FRAME_MIN/OPT/MAX, moved inside the given ones (a --frame-max 480x640
    alone makes opt 480x640), so only sizes the user gave can contradict each other.
    """
    top = hi or _pick(max, FRAME_MAX, *(s for s in (lo, opt) if s))
    bottom = lo or _pick(min, FRAME_MIN, *(s for s in (opt, top) if s))
    mid = opt or _pick(min, _pick(max, FRAME_OPT, bottom), top)
    if not all(bottom[i] <= mid[i] <= top[i] for i in (0, 1)):
        raise ConfigError(
            f"frame sizes min {_hw(bottom)}, opt {_hw(mid)}, max {_hw(top)} must grow from min to opt to max "
            "on both axes (--frame-min/--frame-opt/--frame-max)"
        )
    return Range(bottom[0], mid[0], top[0]), Range(bottom[1], mid[1], top[1])


def _pick(fn: Callable[[int, int], int], first: FrameSize, *more: FrameSize) -> FrameSize:
    """Per axis, `fn` (min or max) over the sizes."""
    h, w = first
    for size in more:
        h, w = fn(h, size[0]), fn(w, size[1])
    return h, w


def _hw(size: Sequence[int]) -> str:
    return f"{size[0]}x{size[1]}"


def refusal(profile: Profile, shape: Sequence[int], frame: bool) -> str | None:
    """Why an input of `shape` cannot run within `profile` (one line with the rebuild flag), or None."""
    if profile.contains(shape):
        return None
    lo, hi = profile.min, profile.max
    if frame and len(shape) == 4 and shape[3] == lo[3]:
        if not lo[0] <= shape[0] <= hi[0]:
            return (
                f"a batch of {shape[0]} frames is outside the engine's batch range {lo[0]}..{hi[0]}; "
                f"rebuild the engine with e.g. --batch 1,{shape[0]},{max(shape[0], 8)}"
            )
        flag = "--frame-max" if shape[1] > hi[1] or shape[2] > hi[2] else "--frame-min"
        return (
            f"frame {_hw(shape[1:3])} is outside the engine's frame range {_hw(lo[1:3])}..{_hw(hi[1:3])}; "
            f"rebuild the engine with {flag} {_hw(_bound(flag, shape[1:3], lo[1:3], hi[1:3]))}"
        )
    return (
        f"input shape {list(shape)} is outside the engine's profile {list(lo)}..{list(hi)}; "
        f"rebuild with e.g. --batch 1,{shape[0]},{max(shape[0], 8)}"
    )


def _bound(flag: str, size: Sequence[int], lo: Sequence[int], hi: Sequence[int]) -> FrameSize:
    """The new bound that takes in `size`: a larger max or a smaller min, per axis."""
    if flag == "--frame-max":
        return max(size[0], hi[0]), max(size[1], hi[1])
    return min(size[0], lo[0]), min(size[1], lo[1])


def output_shape(declared: Sequence[int | str], input_shape: Sequence[int], layout: str) -> Shape:
    """An output's shape for one input: meta.json's B, H and W are the input's batch, height and width."""
    h_axis, w_axis = hw_axes(layout)
    named = {"B": input_shape[0], "H": input_shape[h_axis], "W": input_shape[w_axis]}
    if any(isinstance(d, str) and d not in named for d in declared):
        raise ShapeError(f"output shape {list(declared)} has an axis other than B, H, W or a size")
    return tuple(named[d] if isinstance(d, str) else int(d) for d in declared)

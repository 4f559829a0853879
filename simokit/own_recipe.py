"""The recipe section for your own experts and frames (`own:`), and the model-size rule it uses.

Empty (the default) means the embedded benchmark: `simokit build` and `simokit merge` then train or
load the recipe's own experts on rendered scenes, as the demo does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from simokit.errors import ConfigError

PATCH = 14


def parse_size(value: Any, where: str = "--size") -> tuple[int, int]:
    """(height, width) from 518, "518" or "448x644"; each a multiple of the patch size 14."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+))?\s*", str(value))
    if match is None or isinstance(value, bool):
        raise ConfigError(f"{where}={value!r}: give H or HxW, e.g. 518 or 448x644")
    h = int(match.group(1))
    w = int(match.group(2) or h)
    if h < PATCH or w < PATCH or h % PATCH or w % PATCH:
        raise ConfigError(f"{where}={value!r}: height and width must be positive multiples of {PATCH}")
    return h, w


@dataclass(frozen=True)
class OwnConfig:
    """Given checkpoints and the robot's frames instead of the embedded benchmark.

    `base` and `experts` are simokit checkpoints (one expert per task). `calib` is where the frames
    come from: an image folder (recursive), a video file, a camera URI or a ROS 2 bag (.mcap, with
    `topic`); `calib_frames` are sampled evenly over it and split into a fit half (TAP, re-alignment)
    and a held-out half (the label-free report). `val` is an optional NYUv2-layout folder with labels
    (enables selection by eval). `size` is H or "HxW" (multiples of 14); empty: the base's input size.
    `tasks` keeps a subset of the experts' tasks; empty: all of them.
    """

    base: str = ""
    experts: tuple[str, ...] = ()
    calib: str = ""
    topic: str = ""
    calib_frames: int = 256
    val: str = ""
    size: Any = None
    tasks: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.size is not None:
            parse_size(self.size, "own.size")
        if self.calib_frames < 4:
            raise ConfigError(f"own.calib_frames={self.calib_frames} must be at least 4 (fit + held-out)")
        if bool(self.base) != bool(self.experts):
            raise ConfigError(
                "give both --base and --experts, or neither (own.base and own.experts in a recipe)"
            )
        if self.calib and not self.base:
            raise ConfigError("own.calib needs own.base and own.experts (--base B --experts E1 E2 ...)")

    @property
    def active(self) -> bool:
        """True when the recipe names its own experts and frames (else: the embedded benchmark)."""
        return bool(self.calib)

    @property
    def hw(self) -> tuple[int, int] | None:
        """The model input (height, width), or None for the base checkpoint's own."""
        return None if self.size is None else parse_size(self.size, "own.size")

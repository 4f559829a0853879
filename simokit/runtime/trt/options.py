"""What `simokit build-engine` was asked for, validated before TensorRT is touched."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from simokit.errors import ConfigError
from simokit.runtime.bundle import MODEL_FILE
from simokit.runtime.trt.precision import DEFAULT_LATE_BLOCKS
from simokit.runtime.trt.profiles import FrameSize, Range, frame_ranges

MAX_OPT_LEVEL = 5


@dataclass(frozen=True)
class BuildOptions:
    """Engine build options; each None leaves TensorRT's default."""

    fp16: bool = False
    int8: bool = False
    calib_cache: Path | None = None
    workspace_gb: float | None = None
    opt_level: int | None = None
    batch: Range | None = None
    height: Range | None = None
    width: Range | None = None
    dla_core: int | None = None
    timing_cache: Path | None = None
    fp32_blocks: int = DEFAULT_LATE_BLOCKS
    pin: bool = True
    strongly_typed: bool = False
    onnx_file: str = MODEL_FILE
    frame_min: FrameSize | None = None  # frame-IO bundles: the profile's frame sizes (height, width)
    frame_opt: FrameSize | None = None
    frame_max: FrameSize | None = None

    def __post_init__(self) -> None:
        if self.opt_level is not None and not 0 <= self.opt_level <= MAX_OPT_LEVEL:
            raise ConfigError(f"--opt-level {self.opt_level} must be 0..{MAX_OPT_LEVEL} (TensorRT default 3)")
        if self.workspace_gb is not None and self.workspace_gb <= 0:
            raise ConfigError(f"--workspace-gb {self.workspace_gb} must be positive")
        if self.fp32_blocks < 0:
            raise ConfigError(f"--fp32-blocks {self.fp32_blocks} must be >= 0")
        if self.calib_cache is not None:
            if not self.int8:
                raise ConfigError("--calib-cache is an INT8 calibration cache; add --int8")
            if not Path(self.calib_cache).is_file():
                raise ConfigError(f"calibration cache not found: {self.calib_cache}")
        if self.dla_core is not None:
            if self.dla_core < 0:
                raise ConfigError(f"--dla {self.dla_core} must be a DLA core index (0 or 1 on Orin)")
            if not (self.fp16 or self.int8 or self.strongly_typed):
                raise ConfigError("DLA runs FP16 or INT8 only; add --fp16 (and/or --int8)")
        if self.strongly_typed and (self.fp16 or self.int8):
            raise ConfigError(
                "a strongly typed network takes its precision from the ONNX graph; drop --fp16/--int8 and "
                "point --onnx at an FP16 or Q/DQ graph"
            )

    @property
    def precision(self) -> str:
        """'fp32', 'fp16', 'int8' or 'int8+fp16' (strongly typed: 'typed', set by the graph)."""
        if self.strongly_typed:
            return "typed"
        parts = [p for p, on in (("int8", self.int8), ("fp16", self.fp16)) if on]
        return "+".join(parts) or "fp32"

    @property
    def frame_sizes(self) -> bool:
        """True when any --frame-min/--frame-opt/--frame-max was given."""
        return any(s is not None for s in (self.frame_min, self.frame_opt, self.frame_max))

    def check_io(self, frame: bool) -> tuple[Range, Range] | None:
        """The (height, width) ranges of a frame-IO graph's profile (None for a model-size graph);
        ConfigError for size flags that do not fit the graph's kind."""
        if not frame:
            if self.frame_sizes:
                raise ConfigError(
                    "--frame-min/--frame-opt/--frame-max size camera frames; this bundle's graph takes "
                    "model-size input (--io model): use --height/--width for a --dynamic-size graph"
                )
            return None
        if self.height is not None or self.width is not None:
            raise ConfigError(
                "this bundle's graph takes camera frames of any size (--io frame): give the frame sizes "
                "with --frame-min/--frame-opt/--frame-max HxW instead of --height/--width"
            )
        return frame_ranges(self.frame_min, self.frame_opt, self.frame_max)

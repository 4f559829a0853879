"""The task table: everything that varies per dense task, as data or as the name of a shared kind.

Each field names an implementation that lives where its dependencies are allowed: loss kinds in
tasks.losses (torch), metric kinds in tasks.metrics, colourisers in runtime.overlay; the resize rule,
output kind and verification tolerance are read by the runtime and the exporter. How the target is
stored (channels, dtype, mirroring) is the data layer's half, in data.targets, under the same names.
Adding a task means one entry here, one there, and the renderer producing its target.

Pure Python on purpose: robots import this without torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from simokit.errors import ConfigError

IGNORE_INDEX = 255


class OutputKind(str, Enum):
    """What a graph output holds, as written to a bundle's meta.json."""

    LOGITS = "logits"  # class scores (B, C, H, W); their argmax is the label map
    LABELS = "labels"  # class ids (B, H, W) int32, the argmax taken inside the graph
    METRES = "metres"
    UNIT_VECTORS = "unit_vectors"
    VALUES = "values"
    # affine-invariant inverse depth: larger is nearer, true inverse depth up to an unknown scale and shift
    DISPARITY = "disparity"


class Resize(str, Enum):
    """How an output is mapped back to the frame's size."""

    NEAREST = "nearest"  # class labels: interpolating ids would invent classes
    LINEAR = "linear"
    LINEAR_UNIT = "linear_unit"  # linear, then every vector renormalised to unit length


class Colour(str, Enum):
    """The colouriser that draws a task's output (runtime.overlay.COLOURISERS)."""

    PALETTE = "palette"  # class ids in the bundle's palette, blended over the frame in stream views
    DEPTH = "depth"  # metres through a colour map, near = warm
    NORMALS = "normals"  # unit vectors as RGB
    GRAY = "gray"  # values in [0, 1] as grey
    DISPARITY = "disparity"  # inverse depth of any scale through the depth colour map, near = warm


class Tolerance(str, Enum):
    """How an exported output is compared with torch."""

    ABSOLUTE = "absolute"
    RELATIVE = "relative"  # |a - b| / max(|torch|, 1): metric outputs whose float32 ulp grows with size


@dataclass(frozen=True)
class TaskSpec:
    """Static description of one dense prediction task.

    `activation` is applied by the head after its last linear layer: "none" (logits),
    "exp" (positive metric depth predicted in log space), "softplus" (positive inverse depth of free
    scale), "normalize" (unit 3-vectors), "sigmoid" (values in [0, 1]).
    `metrics` maps each reported metric to True when higher is better; `primary` is the headline one.
    `loss` and `metric` name kinds of tasks.losses.LOSSES and tasks.metrics.METRICS.
    """

    name: str
    out_channels: int
    activation: str
    metrics: dict[str, bool]
    primary: str
    loss: str
    metric: str
    output: OutputKind
    resize: Resize
    colour: Colour
    tolerance: Tolerance = Tolerance.ABSOLUTE

    def __post_init__(self) -> None:
        """Refuse an entry whose primary metric is not one of its metrics."""
        if self.primary not in self.metrics:
            raise ConfigError(f"task '{self.name}': primary metric '{self.primary}' is not in its metrics")

    @property
    def classes(self) -> bool:
        """True when the output is class scores, so an argmax gives labels that must agree after export."""
        return self.output is OutputKind.LOGITS


_NORMAL_METRICS = {
    "mean_angle": False,
    "median_angle": False,
    "within_11": True,
    "within_22": True,
    "within_30": True,
}

TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec(
            "seg", 11, "none", {"miou": True, "pix_acc": True}, "miou",
            "cross_entropy", "confusion", OutputKind.LOGITS, Resize.LINEAR, Colour.PALETTE,
        ),
        TaskSpec(
            "depth", 1, "exp", {"abs_err": False, "abs_rel": False, "delta1": True}, "abs_err",
            "log_l1", "depth", OutputKind.METRES, Resize.LINEAR, Colour.DEPTH, Tolerance.RELATIVE,
        ),
        TaskSpec(
            "normal", 3, "normalize", _NORMAL_METRICS, "mean_angle",
            "cosine", "angle", OutputKind.UNIT_VECTORS, Resize.LINEAR_UNIT, Colour.NORMALS,
        ),
        TaskSpec(
            "relative_depth", 1, "softplus", {"abs_rel": False, "delta1": True}, "abs_rel",
            "ssi_l1", "affine_depth", OutputKind.DISPARITY, Resize.LINEAR, Colour.DISPARITY,
            Tolerance.RELATIVE,
        ),
        TaskSpec(
            "edge", 1, "sigmoid", {"l1": False}, "l1",
            "l1", "l1", OutputKind.VALUES, Resize.LINEAR, Colour.GRAY,
        ),
        TaskSpec(
            "shading", 1, "sigmoid", {"l1": False}, "l1",
            "l1", "l1", OutputKind.VALUES, Resize.LINEAR, Colour.GRAY,
        ),
    )
}  # fmt: skip


def get_task(name: str) -> TaskSpec:
    """Look a task up by name; unknown names raise ConfigError listing the valid ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(f"unknown task '{name}'; choose from {', '.join(TASKS)}") from None


def output_kind(task: str, class_output: str = OutputKind.LOGITS.value) -> OutputKind:
    """What `task`'s exported output holds; class scores become labels when `class_output` is "labels"."""
    spec = get_task(task)
    if spec.classes and class_output == OutputKind.LABELS.value:
        return OutputKind.LABELS
    return spec.output


def resize_rule(task: str, labels: bool = False) -> Resize:
    """How the runtime maps `task`'s output back to the frame: label maps nearest, else the task's rule."""
    return Resize.NEAREST if labels else get_task(task).resize

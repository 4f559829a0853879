"""What each dense task is: output channels, activation, target key and metric directions."""

from __future__ import annotations

from dataclasses import dataclass

from simokit.errors import ConfigError

IGNORE_INDEX = 255


@dataclass(frozen=True)
class TaskSpec:
    """Static description of one dense prediction task.

    `activation` is applied by the head after its last linear layer: "none" (logits),
    "exp" (positive metric depth predicted in log space), "normalize" (unit 3-vectors),
    "sigmoid" (values in [0, 1]).
    `metrics` maps each reported metric to True when higher is better.
    """

    name: str
    out_channels: int
    activation: str
    metrics: dict[str, bool]
    primary: str


TASKS: dict[str, TaskSpec] = {
    "seg": TaskSpec("seg", 11, "none", {"miou": True, "pix_acc": True}, "miou"),
    "depth": TaskSpec("depth", 1, "exp", {"abs_err": False, "abs_rel": False, "delta1": True}, "abs_err"),
    "normal": TaskSpec(
        "normal",
        3,
        "normalize",
        {"mean_angle": False, "median_angle": False, "within_11": True, "within_22": True, "within_30": True},
        "mean_angle",
    ),
    "edge": TaskSpec("edge", 1, "sigmoid", {"l1": False}, "l1"),
    "shading": TaskSpec("shading", 1, "sigmoid", {"l1": False}, "l1"),
}


def get_task(name: str) -> TaskSpec:
    """Look a task up by name; unknown names raise ConfigError listing the valid ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(f"unknown task '{name}'; choose from {', '.join(TASKS)}") from None

"""Option groups that several commands share, each written once with its defaults.

A command adds a group to its parser and reads it back with the matching helper, so two commands
cannot drift apart on a flag's name, help or default without it showing here as a parameter.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import TYPE_CHECKING, Any, TypeVar

from simokit.recipe import PipelineConfig

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")

BUNDLE_HELP = "bundle directory (built by `simokit build`)"
# The Triton model options of `simokit export-triton` and `simokit serve`; their parsers hold them
# in an argument group of this title, which is how tests check that both use this one group.
TRITON_MODEL = "Triton model"


def add_config_args(p: argparse.ArgumentParser, file_argument: bool = False) -> None:
    """The recipe: --config (or a positional YAML file), --set KEY=VALUE overrides, and -q."""
    if file_argument:
        p.add_argument("config_file", nargs="?", help="YAML recipe (same as --config)")
    p.add_argument("--config", help="YAML recipe (default: the built-in demo recipe, see configs/demo.yaml)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe value, e.g. --set experts.stage2.lr=5e-4 (repeatable)",
    )
    add_quiet(p)


def pipeline_config(args: argparse.Namespace) -> PipelineConfig:
    """The recipe the config group names, with its --set overrides applied."""
    from simokit.config import apply_overrides, from_dict, load_yaml

    path = getattr(args, "config_file", None) or args.config
    data = apply_overrides(load_yaml(path) if path else {}, args.set)
    given = {k: getattr(args, k) for k in OWN_FLAGS if getattr(args, k, None) is not None}
    if given:  # flags win over the recipe's own: section, field by field
        data = {**data, "own": {**data.get("own", {}), **given}}
    return from_dict(PipelineConfig, data, where=str(path or "config"))


OWN_FLAGS = ("base", "experts", "calib", "topic", "calib_frames", "val", "size", "tasks")


def add_own_args(p: argparse.ArgumentParser) -> None:
    """Your own experts and frames (the recipe's `own:` section); none given: the embedded benchmark."""
    g = p.add_argument_group("your own experts and frames (recipe section own:)")
    g.add_argument("--base", help="base checkpoint (.safetensors) the experts were fine-tuned from")
    g.add_argument("--experts", nargs="+", help="expert checkpoints, one per task")
    g.add_argument(
        "--calib", help="frames to fit and report on: image folder, video, camera URI or ROS 2 bag (.mcap)"
    )
    g.add_argument("--topic", help="the bag's image topic, e.g. /camera/image_raw")
    g.add_argument(
        "--calib-frames", type=int, help="frames sampled evenly over --calib, half fit, half held out (256)"
    )
    g.add_argument("--val", help="NYUv2-layout folder with labels: also select by eval")
    g.add_argument("--size", help="model input H or HxW, multiples of 14 (default: the base's)")
    g.add_argument("--tasks", nargs="+", help="merge only these tasks' experts (default: all given)")


def add_quiet(p: argparse.ArgumentParser, help: str = "no progress bars") -> None:
    """-q/--quiet; `help` says what the command leaves out."""
    p.add_argument("-q", "--quiet", action="store_true", help=help)


def add_threads(p: argparse.ArgumentParser) -> None:
    """--threads for ONNX Runtime's intra-op pool."""
    p.add_argument("--threads", type=int, help="ONNX Runtime intra-op threads (default: all cores)")


def add_bundle(p: argparse.ArgumentParser, name: str = "bundle", optional: bool = False) -> None:
    """The positional bundle directory a command works on."""
    p.add_argument(name, nargs="?" if optional else None, help=BUNDLE_HELP)


def add_triton_model_args(p: argparse.ArgumentParser, instances: int) -> argparse._ArgumentGroup:
    """--name, --max-batch, --queue-delay-us and --instances, with `instances` as --instances' default.

    The commands differ in that one default only (export-triton 2, serve 1), so it is a parameter.
    """
    group = p.add_argument_group(TRITON_MODEL)
    group.add_argument("--name", help="model name (default: the bundle directory's name)")
    group.add_argument("--max-batch", type=int, default=8, help="max_batch_size (default: %(default)s)")
    group.add_argument("--queue-delay-us", type=int, default=500, help="batcher delay (default: %(default)s)")
    group.add_argument(
        "--instances", type=int, default=instances, help="model instances (default: %(default)s)"
    )
    return group


def from_args(cls: type[T], args: argparse.Namespace, **computed: Any) -> T:
    """An options dataclass from parsed flags: each field from `computed`, else the flag of the same
    name, else the field's default. A `computed` name that is no field is a programming error."""
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(computed) - set(names))
    if unknown:
        raise TypeError(f"{cls.__name__} has no field {', '.join(unknown)}")
    values = {
        n: computed[n] if n in computed else getattr(args, n)
        for n in names
        if n in computed or hasattr(args, n)
    }
    return cls(**values)

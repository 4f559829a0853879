"""SIMO's DPT decoders (`dpt`, `dpt_small`, `dpt-add_small` for seg, depth and normal) as dinov2_dpt heads.

SIMO builds them from DINOv2's DPT blocks: a readout ("project", or "add" for dpt-add_small), widths
C / 2^(3-i) and 256 fusion channels (`dpt`) or C / 2^(5-i) and 128 (the small ones), over blocks
`out_index` read before the final LayerNorm. Depth ends in DINOv2's depth stack (relu + min_depth, not
clamped: SIMO's evaluation reads the decoder output resized to the image); seg and normal in a
3x3 conv + BatchNorm + ReLU + 1x1 stack with raw outputs. Every output is resized bilinearly to the image.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from simokit.errors import CheckpointError, ConfigError
from simokit.models.heads import HeadConfig
from simokit.models.importers.formats.dpt_layout import mmcv_dpt_head

# arch -> (readout, e): reassembly widths are C / 2^(e - i) for blocks i = 0..3
SIMO_DPT_ARCHS = {"dpt": ("project", 3), "dpt_small": ("project", 5), "dpt-add_small": ("add", 5)}
SIMO_DEPTH_TASKS = ("depth", "disp", "depth_zbuffer")
SIMO_DENSE_TASKS = ("seg", "part_seg", "segment_semantic", "normal", "keypoints2d", "edge_texture")
DEFAULT_OUT_INDEX = (5, 7, 9, 11)
DEFAULT_MIN_DEPTH = 1e-3  # SIMO's depth decode head default


def _depth_options(task: str, constructor_args: Mapping[str, Any]) -> dict[str, Any]:
    head_tasks = constructor_args.get("head_tasks") or {}
    settings = head_tasks.get(task) or {}
    return {"min_depth": float(settings.get("min_depth", DEFAULT_MIN_DEPTH)), "max_depth": None}


def _strip_task_prefix(task: str, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    prefix = f"decoders.{task}."
    if any(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    return dict(state)


def simo_dpt_head(
    task: str, arch: str, constructor_args: Mapping[str, Any], decoder_state: Mapping[str, Tensor]
) -> tuple[HeadConfig, dict[str, Tensor]]:
    """A SIMO DPT decoder of `task` (SIMO's task name) built as `arch`, as a dinov2_dpt head.

    `decoder_state` holds the decoder's keys, relative to it or under `decoders.<task>.`;
    `constructor_args` is the file's (out_index, head_tasks with min_depth...).
    """
    if arch not in SIMO_DPT_ARCHS:
        raise ConfigError(f"SIMO head arch '{arch}' is not a DPT; choose from {', '.join(SIMO_DPT_ARCHS)}")
    if task not in SIMO_DEPTH_TASKS + SIMO_DENSE_TASKS:
        raise ConfigError(
            f"SIMO task '{task}' has no DPT decoder; SIMO's DPT tasks: "
            f"{', '.join(SIMO_DEPTH_TASKS + SIMO_DENSE_TASKS)}"
        )
    readout, exponent = SIMO_DPT_ARCHS[arch]
    layers = tuple(int(i) for i in constructor_args.get("out_index", DEFAULT_OUT_INDEX))
    if len(layers) != 4:
        raise CheckpointError(f"SIMO {arch} decoder reads 4 blocks, but out_index is {list(layers)}")
    depth = task in SIMO_DEPTH_TASKS
    options = _depth_options(task, constructor_args) if depth else {}
    where = f"SIMO {task} {arch} decoder"
    cfg, state = mmcv_dpt_head(_strip_task_prefix(task, decoder_state), layers, readout, options, where)
    if (cfg.options["output"] == "depth") != depth:
        raise CheckpointError(f"{where}: its output stack is for {cfg.options['output']}, not {task}")
    dim = state["reassemble.0.project.weight"].shape[1] // (2 if readout == "add" else 1)
    expected = [dim // 2 ** (exponent - i) for i in range(4)]
    if list(cfg.options["post_channels"]) != expected:
        raise CheckpointError(
            f"{where}: reassembly widths {cfg.options['post_channels']} are not {arch}'s {expected}"
        )
    return cfg, state

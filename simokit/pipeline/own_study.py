"""The merge study on your own experts and frames: TAP / aligned TAP on the fit frames, report on the
held-out frames by agreement with each expert (and selection by eval when labels are given).

The study is cached like the benchmark's (simokit.pipeline.merging), keyed by the checkpoints' bytes,
the frame set and the recipe; the base's and experts' features are cached apart (FeatureStore), so a
re-run with another method or grid recomputes only the merged encoders.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from simokit.cache import atomic_path, cache_root, config_key
from simokit.config import to_dict
from simokit.data import SceneArrays
from simokit.errors import CheckpointError, ConfigError
from simokit.merge.inputs import Inputs, load_inputs
from simokit.merge.learned.coefficients import AdaMergingParams
from simokit.models.checkpoint import Checkpoint, CheckpointMeta
from simokit.models.importers import load_meta
from simokit.pipeline.agreement import pseudo_targets
from simokit.pipeline.feature_store import FeatureStore
from simokit.pipeline.merging import file_sha256
from simokit.pipeline.own_frames import FrameSet, load_frame_set
from simokit.pipeline.own_labelled import labelled_rows, labelled_splits
from simokit.pipeline.study import rebuild_selected, run_study
from simokit.pipeline.study_result import Row, StudyResult, result_from_json, result_to_json
from simokit.recipe import PipelineConfig
from simokit.tasks.score import Metrics

_FORMAT = 1  # bump when the own-frames study computes something new


@dataclass
class OwnStudy:
    """Everything a report or a bundle needs from a study on the user's material."""

    base: Path
    experts: list[Path]
    inputs: Inputs
    checkpoints: list[Checkpoint]
    frames: FrameSet
    agreement: SceneArrays  # held-out images with each expert's predictions as targets
    val: SceneArrays | None
    result: StudyResult
    size: tuple[int, int]
    store: FeatureStore
    labelled: tuple[list[Row], Metrics] | None = None  # rows on the labelled test split of --val, if any


def chosen_experts(paths: list[Path], tasks: tuple[str, ...]) -> list[Path]:
    """The experts of `tasks` (all when empty), in the given order; refuses unknown tasks, missing files."""
    for p in paths:
        if not p.exists():  # a file, or a Hugging Face folder
            raise CheckpointError(f"checkpoint {p} not found")
    if not tasks:
        return paths
    by_task = {load_meta(p).tasks[0]: p for p in paths}
    unknown = [t for t in tasks if t not in by_task]
    if unknown:
        raise ConfigError(
            f"--tasks {', '.join(unknown)}: no expert for it; the experts have {', '.join(by_task)}"
        )
    return [p for p in paths if p in {by_task[t] for t in tasks}]


def model_size(own_size: tuple[int, int] | None, base: CheckpointMeta) -> tuple[int, int]:
    """The input (height, width): the recipe's, else the base checkpoint's."""
    if own_size is not None:
        return own_size
    h, w = base.input_size
    return int(h), int(w)


def _key(cfg: PipelineConfig, files: list[Path], frames: FrameSet, val: SceneArrays | None) -> str:
    return config_key(
        {
            "merge": to_dict(cfg.merge),
            "files": [file_sha256(p) for p in files],
            "frames": frames.key,
            "val": hashlib.sha256(val.image.tobytes()).hexdigest() if val is not None else None,
            "batch": cfg.eval_batch,
            "format": _FORMAT,
            "kind": "own-frames",
            "adamerging_defaults": dataclasses.asdict(AdaMergingParams()),
        }
    )


def own_study(cfg: PipelineConfig, progress: bool = True) -> OwnStudy:
    """Read the frames, run (or load) the study on them and score every row by agreement."""
    own = cfg.own
    base = Path(own.base).expanduser()
    experts = chosen_experts([Path(p).expanduser() for p in own.experts], own.tasks)
    if not base.exists():
        raise CheckpointError(f"checkpoint {base} not found")
    inputs, checkpoints = load_inputs(base, list(experts))
    size = model_size(own.hw, checkpoints[0].meta)
    frames = load_frame_set(own.calib, own.calib_frames, size, own.topic, progress)
    val, labelled = labelled_splits(own.val, size)
    if cfg.merge.select == "eval" and val is None:
        raise ConfigError("merge.select=eval needs labels: give --val DIR, or select by tap / tap_aligned")
    store = FeatureStore()
    agreement = pseudo_targets(inputs, frames.held, cfg.merge.batch, cfg.merge.device)
    cache = cache_root() / "merge" / _key(cfg, [base, *experts], frames, val) / "study.json"
    if cache.is_file():
        result = result_from_json(json.loads(cache.read_text()))
        rebuild_selected(inputs, result, cfg.merge, frames.fit, store)
    else:
        result = run_study(
            inputs, cfg.merge, val, frames.fit, agreement, cfg.eval_batch, progress, fixed=store
        )
        with atomic_path(cache) as tmp:
            tmp.write_text(json.dumps(result_to_json(result)))
    study = OwnStudy(base, experts, inputs, checkpoints, frames, agreement, val, result, size, store)
    if labelled is not None:
        study.labelled = labelled_rows(inputs, result, cfg.merge, frames.fit, labelled, store)
    return study


def own_size(cfg: PipelineConfig) -> tuple[int, int]:
    """The model input (height, width) a study on the user's material runs at, before running it."""
    return model_size(cfg.own.hw, load_meta(Path(cfg.own.base).expanduser()))


def own_tasks(cfg: PipelineConfig) -> tuple[str, ...]:
    """The tasks of the chosen experts, in the order the merged model's heads come in."""
    paths = chosen_experts([Path(p).expanduser() for p in cfg.own.experts], cfg.own.tasks)
    return tuple(load_meta(p).tasks[0] for p in paths)

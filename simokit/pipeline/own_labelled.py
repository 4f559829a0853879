"""Labelled rows for a study on the user's frames, when `--val` gives an NYUv2-layout folder.

The folder's 'val' split (else 'train', else the one split given) selects by eval; its 'test' split,
when there is one apart from it, scores every row of the study as the benchmark's report does
(normalised score, 1.0 = expert). The row models are rebuilt from the study: one merge and one fit each.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from simokit.calib.frames import nyuv2_split
from simokit.data import SceneArrays
from simokit.errors import DataError
from simokit.merge.api import merge_state_dicts
from simokit.merge.features import Collector, head_parts, image_batches
from simokit.merge.inputs import Inputs
from simokit.models import MultiTaskModel
from simokit.pipeline.own_frames import to_model_size
from simokit.pipeline.study_result import Row, StudyResult
from simokit.realign.base import ExpertTargets, RealignSettings, realigned_model
from simokit.realign.registry import get_realigner
from simokit.recipe import MergeConfig
from simokit.tasks.evaluate import evaluate
from simokit.tasks.score import Metrics, normalized_score


def _split(root: Path, split: str, size: tuple[int, int], where: str) -> SceneArrays:
    from simokit.data.folders import NYUv2Folder

    arrays = NYUv2Folder(root, split).to_arrays()
    h, w = arrays.image.shape[1:3]
    if tuple((h, w)) == size:
        return arrays
    if h < size[0] or w < size[1]:
        raise DataError(
            f"--val {where}: images are {h}x{w}, smaller than the model input {size[0]}x{size[1]}"
        )
    # the frames' rule: scale to cover, centre-crop; labels nearest so they stay on their pixels
    fields = {"image": np.stack([to_model_size(im, size) for im in arrays.image])}
    for task in arrays.tasks:
        fields[task] = np.stack([to_model_size(t, size, nearest=True) for t in getattr(arrays, task)])
    return SceneArrays(domain=arrays.domain, **fields)


def labelled_splits(folder: str, size: tuple[int, int]) -> tuple[SceneArrays | None, SceneArrays | None]:
    """(selection split, report split) of an NYUv2-layout folder at the model size; (None, None) if none."""
    if not folder:
        return None, None
    path = Path(folder).expanduser()
    found = nyuv2_split(path)
    if found is None:
        raise DataError(f"--val {folder}: not an NYUv2-layout folder ({{split}}/image/N.npy)")
    root, split = found
    if root == path:  # the folder holds splits: 'val' selects if there is one, 'test' reports
        split = "val" if (root / "val" / "image").is_dir() else split
        has_test = split != "test" and (root / "test" / "image").is_dir()
        return _split(root, split, size, folder), _split(root, "test", size, folder) if has_test else None
    return _split(root, split, size, folder), None


def row_model(
    inputs: Inputs, row: Row, cfg: MergeConfig, fit: SceneArrays, fixed: Collector
) -> MultiTaskModel:
    """The model behind a study row: its merge, re-aligned on the fit frames as the study did."""
    state = inputs.base_state
    if row.method != "zeroshot":
        state = merge_state_dicts(state, list(inputs.expert_states.values()), row.method, **row.hparams)
    merged = inputs.make_encoder(state)
    if row.realign == "none":
        return MultiTaskModel(merged, dict(inputs.heads)).eval()
    batches = list(image_batches(fit, cfg.realign_images, cfg.batch))
    depth = merged.depth
    feats = {
        t: fixed(
            inputs.make_encoder(inputs.expert_states[t]),
            batches,
            sorted({b for b, _ in head_parts(h, depth)}),
            cfg.device,
        )
        for t, h in inputs.heads.items()
    }
    fitted = get_realigner(row.realign)(
        merged, inputs.heads, fit, RealignSettings.of(cfg), ExpertTargets(features=feats)
    )
    return realigned_model(merged, fitted)


def labelled_rows(
    inputs: Inputs,
    result: StudyResult,
    cfg: MergeConfig,
    fit: SceneArrays,
    test: SceneArrays,
    fixed: Collector,
) -> tuple[list[Row], Metrics]:
    """Every study row scored on the labelled `test` split, and the experts' metrics there."""

    def metrics(model: MultiTaskModel, tasks: tuple[str, ...]) -> Metrics:
        return evaluate(model, test, tasks, num_classes=inputs.num_classes, device=cfg.device)

    experts: Metrics = {}
    for t in inputs.tasks:
        experts.update(
            metrics(MultiTaskModel(inputs.make_encoder(inputs.expert_states[t]), {t: inputs.heads[t]}), (t,))
        )
    done: dict[str, Metrics] = {}
    rows = []
    for row in result.rows:
        key = json.dumps([row.method, row.hparams, row.realign], sort_keys=True)
        if key not in done:
            done[key] = metrics(row_model(inputs, row, cfg, fit, fixed), inputs.tasks)
        m = done[key]
        rows.append(
            Row(
                row.name,
                row.method,
                row.hparams,
                row.selected_by,
                row.realign,
                m,
                normalized_score(m, experts),
            )
        )
    return rows, experts

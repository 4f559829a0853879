"""Cached steps from nothing to experts: render data, pre-train the base, fine-tune each expert.

Each artefact lives under the cache directory at a path keyed by the hash of every setting that
produced it, so re-running with the same recipe loads instead of retraining, and changing one
setting retrains only what depends on it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from simokit.cache import cache_root, config_key
from simokit.config import to_dict
from simokit.data import CLASS_NAMES, SceneArrays, load_scenes
from simokit.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from simokit.models import DinoVisionTransformer, MultiTaskModel
from simokit.models.checkpoint import (
    CheckpointMeta,
    encoder_from_checkpoint,
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
    state_hash,
)
from simokit.models.heads import HeadConfig
from simokit.recipe import PipelineConfig
from simokit.tasks.evaluate import evaluate
from simokit.train.base import pretrain_base
from simokit.train.expert import head_config, train_expert


@dataclass
class Splits:
    """Rendered scenes: train (experts), val (metrics, eval-based selection), calib (unlabelled
    images for TAP and re-alignment) and test (final merge report); each split has its own seeds."""

    train: SceneArrays
    val: SceneArrays
    calib: SceneArrays | None = None
    test: SceneArrays | None = None


def load_data(cfg: PipelineConfig, progress: bool = True, merge: bool = False) -> Splits:
    """Render (or read from cache) train and val, and calib and test too when `merge` is set."""
    d = cfg.data

    def split(name: str, n: int) -> SceneArrays:
        return load_scenes(name, n, d.size, d.domains, d.seed, progress=progress)

    if not merge:
        return Splits(split("train", d.train), split("val", d.val))
    return Splits(
        split("train", d.train), split("val", d.val), split("calib", d.calib), split("test", d.test)
    )


def _training_data(cfg: PipelineConfig) -> dict[str, object]:
    # Only what the training images depend on; growing the test or calibration split retrains nothing.
    data = to_dict(cfg.data)
    return {k: data[k] for k in ("size", "train", "val", "domains", "seed")}


def base_path(cfg: PipelineConfig) -> Path:
    """Cache path of the base encoder trained with `cfg`."""
    key = config_key({"data": _training_data(cfg), "base": to_dict(cfg.base)})
    return cache_root() / "runs" / key / "base.safetensors"


def expert_path(cfg: PipelineConfig, task: str, domain: str | None = None) -> Path:
    """Cache path of the `task` expert trained with `cfg` (keyed by its base, and its domain if one)."""
    # the base's own key, not its path: a cache moved elsewhere ($SIMOKIT_CACHE, another $HOME)
    # must keep its experts (keyed by the absolute path, a moved cache silently retrained them all)
    base = base_path(cfg).parent.name
    spec: dict[str, object] = {"base": base, "experts": to_dict(cfg.experts), "task": task}
    if domain is not None:
        spec["domain"] = domain
    key = config_key(spec)
    name = f"expert-{task}" if domain is None else f"expert-{domain}-{task}"
    return base_path(cfg).parent / f"{name}-{key[:8]}.safetensors"


def _meta(
    kind: str,
    encoder: DinoVisionTransformer,
    heads: dict[str, HeadConfig],
    cfg: PipelineConfig,
    base_hash: str,
    extra: dict[str, object],
) -> CheckpointMeta:
    return CheckpointMeta(
        kind=kind,
        encoder=encoder.config.to_dict(),
        heads={t: h.to_dict() for t, h in heads.items()},
        classes=CLASS_NAMES,
        input_size=(cfg.data.size, cfg.data.size),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        base_hash=base_hash,
        extra=extra,
    )


def ensure_base(cfg: PipelineConfig, splits: Splits, progress: bool = True) -> Path:
    """Return the base checkpoint path, pre-training it first if it is not cached."""
    path = base_path(cfg)
    if path.is_file():
        return path
    t0 = time.perf_counter()
    encoder, history = pretrain_base(cfg.base, splits.train, progress)
    sd = encoder.state_dict()
    extra = {"recipe": to_dict(cfg.base), "final_loss": history[-1], "seconds": time.perf_counter() - t0}
    return save_checkpoint(path, _meta("base", encoder, {}, cfg, state_hash(sd), extra), sd)


def load_encoder(path: Path) -> tuple[DinoVisionTransformer, str]:
    """Load the encoder of a simokit checkpoint; returns it with its own state hash."""
    ck = load_checkpoint(path)
    return encoder_from_checkpoint(ck), state_hash(ck.encoder)


def ensure_expert(
    cfg: PipelineConfig, task: str, splits: Splits, progress: bool = True, domain: str | None = None
) -> Path:
    """Return the `task` expert checkpoint path, fine-tuning it first if it is not cached.

    With `domain`, `splits` hold that domain's scenes only and the expert starts from the shared
    base (trained on every domain of `cfg`), which must already be cached.
    """
    path = expert_path(cfg, task, domain)
    if path.is_file():
        return path
    if domain is not None and not base_path(cfg).is_file():
        raise RuntimeError("domain experts need the shared base first: call ensure_base with all domains")
    base, base_hash = load_encoder(ensure_base(cfg, splits, progress))
    t0 = time.perf_counter()
    model, history = train_expert(task, base, cfg.experts, splits.train, progress)
    seconds = time.perf_counter() - t0
    metrics = evaluate(model, splits.val, (task,), cfg.eval_batch)
    extra = {
        "recipe": to_dict(cfg.experts),
        "stage1_final_loss": history["stage1"][-1],
        "stage2_final_loss": history["stage2"][-1],
        "seconds": seconds,
        "val_metrics": metrics[task],
        "domain": domain or "+".join(cfg.data.domains),
    }
    hcfg = head_config(task, cfg.experts)
    meta = _meta("expert", model.encoder, {task: hcfg}, cfg, base_hash, extra)
    return save_checkpoint(path, meta, model.encoder.state_dict(), {task: model.heads[task].state_dict()})


def ensure_experts(cfg: PipelineConfig, splits: Splits, progress: bool = True) -> tuple[Path, list[Path]]:
    """The base checkpoint and one expert per task of the recipe, training whatever is not cached."""
    base = ensure_base(cfg, splits, progress)
    return base, [ensure_expert(cfg, t, splits, progress) for t in cfg.experts.tasks]


def load_model(path: Path) -> MultiTaskModel:
    """Build a MultiTaskModel (encoder + every head) from a simokit checkpoint."""
    return model_from_checkpoint(load_checkpoint(path))

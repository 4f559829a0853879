"""Training pieces: schedules, masks, patch round trip, depth-head initialisation, two-stage recipe."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from simokit.data import generate, to_tensor_batch
from simokit.models import build_encoder
from simokit.recipe import BaseConfig, ExpertConfig, StageConfig
from simokit.train.base import patchify, pretrain_base, random_masks, unpatchify
from simokit.train.expert import head_config, init_output_bias, train_expert
from simokit.train.loop import cosine_lr


def test_cosine_schedule_warms_up_and_decays_to_one_percent() -> None:
    stage = StageConfig(steps=100, lr=1.0, warmup=10)
    assert cosine_lr(0, stage) == pytest.approx(0.1)
    assert cosine_lr(9, stage) == pytest.approx(1.0)
    assert cosine_lr(10, stage) == pytest.approx(1.0)
    assert cosine_lr(100, stage) == pytest.approx(0.01)
    assert cosine_lr(55, stage) == pytest.approx(0.505)


def test_patchify_round_trip_and_exact_mask_count() -> None:
    x = torch.randn(2, 3, 28, 42)
    p = patchify(x, 14)
    assert p.shape == (2, 6, 14 * 14 * 3)
    torch.testing.assert_close(unpatchify(p, 14, (2, 3)), x, rtol=0, atol=0)
    torch.testing.assert_close(p[0, 1], x[0, :, :14, 14:28].permute(1, 2, 0).reshape(-1))
    masks = random_masks(4, 64, 0.5, torch.Generator().manual_seed(0))
    assert masks.sum(dim=1).tolist() == [32, 32, 32, 32]


@pytest.fixture(scope="module")
def scenes():  # type: ignore[no-untyped-def]
    return generate(16, size=56, workers=1, progress=False)


def test_depth_head_starts_at_the_median_depth(scenes) -> None:  # type: ignore[no-untyped-def]
    from simokit.models import build_head

    head = build_head(head_config("depth", ExpertConfig()), 48).eval()
    init_output_bias(head, "depth", scenes)
    feats = [(torch.randn(2, 48, 4, 4), torch.randn(2, 48))]
    out = head(feats, (56, 56))
    median = float(np.median(np.asarray(scenes.depth)))
    torch.testing.assert_close(out, torch.full_like(out, median), rtol=1e-5, atol=0)


def test_two_stage_expert_learns_and_leaves_the_base_untouched(scenes) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    base = build_encoder("vitnano14").eval()
    before = {k: v.clone() for k, v in base.state_dict().items()}
    stage1 = StageConfig(steps=15, lr=1e-2, warmup=1)
    cfg = ExpertConfig(stage1=stage1, stage2=StageConfig(steps=15, lr=1e-3, warmup=1), batch=8)
    model, history = train_expert("seg", base, cfg, scenes, progress=False)
    assert np.mean(history["stage1"][-3:]) < np.mean(history["stage1"][:3])
    assert len(history["stage2"]) == 15 and all(np.isfinite(history["stage2"]))
    for k, v in base.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    moved = sum(float((model.encoder.state_dict()[k] - before[k]).abs().sum()) for k in before)
    assert moved > 0  # stage 2 fine-tuned the encoder copy
    out = model(to_tensor_batch(np.asarray(scenes.image[:2])))["seg"]
    assert out.shape == (2, 11, 56, 56)


def test_pretraining_lowers_the_mim_loss(scenes) -> None:  # type: ignore[no-untyped-def]
    cfg = BaseConfig(encoder="vitnano14", steps=25, batch=8, lr=2e-3, warmup=2, aux_tasks=("edge",))
    encoder, history = pretrain_base(cfg, scenes, progress=False)
    assert np.mean(history[-5:]) < np.mean(history[:5])
    assert not encoder.training


def test_cache_names_do_not_depend_on_where_the_cache_lives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Moving the cache ($SIMOKIT_CACHE, another $HOME) must not retrain: names come from configs only."""
    from simokit.recipe import PipelineConfig
    from simokit.train.pipeline import base_path, expert_path

    cfg = PipelineConfig()
    names = []
    for where in ("a", "b"):
        monkeypatch.setenv("SIMOKIT_CACHE", str(tmp_path / where))
        names.append((base_path(cfg).relative_to(tmp_path / where), expert_path(cfg, "seg").name))
    assert names[0] == names[1]
    assert expert_path(cfg, "seg") != expert_path(cfg, "depth")
    assert expert_path(cfg, "seg", domain="indoor").name.startswith("expert-indoor-seg-")

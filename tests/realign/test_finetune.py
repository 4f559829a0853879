"""Learned head re-alignment: heads improve on cached merged features, originals stay untouched."""

from __future__ import annotations

import torch

from simokit.data import generate
from simokit.models import HeadConfig, build_encoder, build_head
from simokit.realign.finetune import finetune_heads


def test_finetuned_heads_lower_the_task_loss_and_copies_are_independent() -> None:
    torch.manual_seed(0)
    merged = build_encoder("vitnano14").eval()
    data = generate(16, size=56, workers=1, progress=False, tasks=("seg", "normal"))
    heads = {
        "seg": build_head(HeadConfig("linear", 11, "none", batch_norm=True), 48).eval(),
        "normal": build_head(HeadConfig("linear", 3, "normalize", layers=(0, 1)), 48).eval(),
    }
    before = {t: {k: v.clone() for k, v in h.state_dict().items()} for t, h in heads.items()}
    result = finetune_heads(merged, heads, data, n_images=16, steps=40, lr=1e-2, batch=8)
    assert result.images == 16
    for task in heads:
        stats = result.stats[task]
        assert stats["loss_last"] < 0.9 * stats["loss_first"], (task, stats)
        for k, v in heads[task].state_dict().items():
            torch.testing.assert_close(v, before[task][k], rtol=0, atol=0)
        assert not result.heads[task].training

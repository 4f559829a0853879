"""LoRA representation re-alignment: exact merge-back, loss goes down, plain encoder comes out."""

from __future__ import annotations

import copy

import torch
from torch import nn

from simokit.data import generate
from simokit.models import HeadConfig, build_encoder, build_head
from simokit.realign.lora import LoRALinear, lora_realign


def test_merged_adapter_equals_adapter_forward() -> None:
    g = torch.Generator().manual_seed(0)
    lora = LoRALinear(nn.Linear(6, 4), rank=2, alpha=2.0, generator=g)
    with torch.no_grad():
        lora.lora_b.normal_()
    x = torch.randn(5, 6)
    torch.testing.assert_close(lora.merged()(x), lora(x), rtol=0, atol=1e-5)


def test_lora_realign_trains_and_merges_back_into_a_plain_encoder() -> None:
    torch.manual_seed(0)
    merged = build_encoder("vitnano14").eval()
    original = copy.deepcopy(merged.state_dict())
    data = generate(16, size=56, workers=1, progress=False, tasks=("seg", "depth"))
    heads = {
        "seg": build_head(HeadConfig("linear", 11, "none", batch_norm=True), 48).eval(),
        "depth": build_head(HeadConfig("linear", 1, "exp"), 48).eval(),
    }
    result = lora_realign(merged, heads, data, n_images=16, steps=30, lr=5e-3, rank=4, batch=8)
    enc = result.encoder
    assert enc is not None and not any(isinstance(m, LoRALinear) for m in enc.modules())
    assert set(enc.state_dict()) == set(original)
    for k, v in merged.state_dict().items():
        torch.testing.assert_close(v, original[k], rtol=0, atol=0)  # input encoder untouched
    changed = sum(float((enc.state_dict()[k] - original[k]).abs().sum()) for k in original)
    assert changed > 0
    for task, stats in result.stats.items():
        assert stats["loss_last"] < stats["loss_first"], (task, stats)
    assert result.heads["seg"] is heads["seg"]  # heads stay as they are

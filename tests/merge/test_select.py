"""TAP: exact feature distances, zero-shot normalisation, ranking, and candidate picking."""

from __future__ import annotations

import copy

import pytest
import torch

from simokit.merge.features import collect
from simokit.merge.select import Candidate, feature_distance, pick, tap_reference, tap_score
from simokit.models import build_encoder
from simokit.pipeline.report import spearman


def _feats(patch: torch.Tensor, cls: torch.Tensor) -> list[dict[int, tuple[torch.Tensor, torch.Tensor]]]:
    return [{0: (patch, cls)}]


def test_feature_distance_by_hand() -> None:
    a = torch.zeros(1, 2, 1, 2)  # two patch rows of (0, 0)
    b = torch.zeros(1, 2, 1, 2)
    b[0, :, 0, 0] = torch.tensor([3.0, 4.0])  # row 0 differs by (3, 4): squared L2 = 25
    cls = torch.ones(1, 2)
    assert feature_distance(_feats(a, cls), _feats(b, cls), [(0, "patch")], "l2") == pytest.approx(12.5)
    assert feature_distance(_feats(a, cls), _feats(b, cls), [(0, "cls")], "l2") == 0.0
    c = torch.zeros(1, 2, 1, 1)
    c[0, 0] = 1.0
    d = torch.zeros(1, 2, 1, 1)
    d[0, 1] = 2.0  # orthogonal rows: 1 - cos = 1
    assert feature_distance(_feats(c, cls), _feats(d, cls), [(0, "patch")], "cosine") == pytest.approx(1.0)


def test_tap_is_zero_for_the_expert_one_for_the_base_and_ranks_interpolations() -> None:
    torch.manual_seed(0)
    base = build_encoder("vitnano14").eval()
    expert = copy.deepcopy(base)
    with torch.no_grad():
        for p in expert.parameters():
            p.add_(0.1 * torch.randn_like(p))
    batches = [torch.randn(2, 3, 56, 56)]
    parts = {"seg": [((1, True), "patch")]}
    ref = tap_reference(base, {"seg": expert}, parts, batches)
    assert tap_score(expert, ref)["mean"] == pytest.approx(0.0, abs=1e-12)
    assert tap_score(base, ref)["seg"] == pytest.approx(1.0)
    scores = []
    for t in (0.25, 0.5, 0.75):
        mid = copy.deepcopy(base)
        mid.load_state_dict(
            {k: (1 - t) * v + t * expert.state_dict()[k] for k, v in base.state_dict().items()}
        )
        scores.append(tap_score(mid, ref)["mean"])
    assert scores[0] > scores[1] > scores[2] > 0.0  # closer in weights, closer in features
    assert len(collect(base, batches, [(0, True), (1, True)])[0]) == 2


def test_pick_and_spearman() -> None:
    cands = [
        Candidate("sum", {"alpha": a}, tap=t, tap_aligned=ta, val_score=v, val_score_realigned=r)
        for a, t, ta, v, r in [
            (0.1, 0.9, 0.3, 0.5, 0.9),
            (0.5, 0.2, 0.2, 0.8, 0.95),
            (1.0, 0.4, 0.1, 0.7, 0.97),
        ]
    ]
    assert pick(cands, "tap_aligned").hparams == {"alpha": 1.0}
    assert pick(cands, "tap").hparams == {"alpha": 0.5}
    assert pick(cands, "eval").hparams == {"alpha": 0.5}
    assert pick(cands, "eval_realigned").hparams == {"alpha": 1.0}
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)

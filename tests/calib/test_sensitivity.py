"""The greedy exclusion: most harmful block first, until every task is within budget."""

from __future__ import annotations

from simokit.calib.graph import QuantPlan
from simokit.calib.sensitivity import sweep

COST = {"a": 3.0, "b": 0.5, "c": 0.2}  # depth points each block loses when quantised


def _plan() -> QuantPlan:
    blocks = {b: [f"/model/{b}/MatMul"] for b in COST}
    return QuantPlan([n for ns in blocks.values() for n in ns], {}, blocks)


def _measure(plan: QuantPlan) -> dict[str, float]:
    return {"seg": 0.0, "depth": sum(COST[b] for b in plan.blocks)}


def test_excludes_the_most_harmful_block_first_until_within_budget() -> None:
    final, result = sweep(_plan(), _measure, budget=1.0, mean_budget=1.0, progress=False)
    assert result.single == {b: {"seg": 0.0, "depth": c} for b, c in COST.items()}
    assert result.excluded == ["a"] and result.within_budget
    assert sorted(final.blocks) == ["b", "c"] and final.kept_float == {"/model/a/MatMul": "sensitivity (a)"}
    assert [s[0] for s in result.steps] == [[], ["a"]]
    assert "| a | 0.00 | 3.00 |" in result.table()


def test_unreachable_budget_keeps_the_best_step_and_says_so() -> None:
    final, result = sweep(_plan(), _measure, budget=0.1, mean_budget=0.1, progress=False)
    assert not result.within_budget
    assert [s[0] for s in result.steps] == [[], ["a"], ["a", "b"]]  # one block always stays quantised
    assert result.excluded == ["a", "b"] and list(final.blocks) == ["c"]

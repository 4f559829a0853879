"""Sensitivity sweep: quantise one block at a time, then keep the most harmful blocks in float.

Each block (patch embedding, each transformer block, each head) is quantised alone and every
task's normalised score drop against FP32 is measured on labelled data. Blocks are then moved
back to float, most harmful first (by the worst task drop they cause alone), until the whole
quantised graph keeps every task within `budget` points and the mean within `mean_budget`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tqdm import tqdm

from simokit.calib.graph import QuantPlan

Drops = dict[str, float]


@dataclass
class SweepResult:
    """Per-block drops alone, each greedy step's drops, the chosen float blocks and the outcome."""

    single: dict[str, Drops] = field(default_factory=dict)
    steps: list[tuple[list[str], Drops]] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    within_budget: bool = False

    def table(self) -> str:
        """Markdown: each block's drops when quantised alone, then the greedy steps."""
        tasks = list(next(iter(self.single.values()), {}))
        head = "| " + " | ".join(["block quantised alone", *tasks]) + " |"
        lines = [head, "|" + "---|" * (len(tasks) + 1)]
        lines += [
            f"| {b} | " + " | ".join(f"{d[t]:.2f}" for t in tasks) + " |" for b, d in self.single.items()
        ]
        lines += ["", "| float blocks | " + " | ".join(tasks) + " |", "|" + "---|" * (len(tasks) + 1)]
        for blocks, d in self.steps:
            name = ", ".join(blocks) or "(none)"
            lines.append(f"| {name} | " + " | ".join(f"{d[t]:.2f}" for t in tasks) + " |")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        """JSON-safe summary for meta.json."""
        return {"single": self.single, "excluded": self.excluded, "within_budget": self.within_budget}


def within(drops: Drops, budget: float, mean_budget: float) -> bool:
    """Every task within `budget` points and their mean within `mean_budget`."""
    return max(drops.values()) <= budget and sum(drops.values()) / len(drops) <= mean_budget


def sweep(
    plan: QuantPlan,
    measure: Callable[[QuantPlan], Drops],
    budget: float = 2.0,
    mean_budget: float = 1.0,
    progress: bool = True,
) -> tuple[QuantPlan, SweepResult]:
    """Measure each block alone, then exclude blocks greedily; returns the final plan and the record.

    Where no step meets the budget, the step with the smallest worst-task drop is chosen.
    """
    result = SweepResult()
    for block in tqdm(list(plan.blocks), desc="sensitivity", unit="block", disable=not progress):
        result.single[block] = measure(plan.only(block))
    order = sorted(result.single, key=lambda b: max(result.single[b].values()), reverse=True)
    for k in range(len(order)):  # at least one block stays quantised
        step = measure(plan.without(order[:k]))
        result.steps.append((order[:k], step))
        if within(step, budget, mean_budget):
            result.excluded, result.within_budget = order[:k], True
            return plan.without(order[:k]), result
    best = min(result.steps, key=lambda s: max(s[1].values()))
    result.excluded = best[0]
    return plan.without(best[0]), result

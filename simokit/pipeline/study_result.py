"""What a merge study found: candidates, test rows, timings and the selection, and its JSON form."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from simokit.merge.select import Candidate
from simokit.models import MultiTaskModel
from simokit.tasks.score import Metrics


@dataclass
class Row:
    """One line of the final table: a model and its test metrics."""

    name: str
    method: str
    hparams: dict[str, Any]
    selected_by: str
    realign: str
    metrics: Metrics
    score: float


@dataclass
class StudyResult:
    """Candidates with their scores, final test rows, timings and the selected deployable model."""

    candidates: list[Candidate] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    expert_val: Metrics = field(default_factory=dict)
    expert_test: Metrics = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    fit_stats: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    learned: dict[str, dict[str, Any]] = field(default_factory=dict)  # per learned run: losses, TAP, cost
    selected: MultiTaskModel | None = None
    selected_row: Row | None = None


def result_to_json(res: StudyResult) -> dict[str, Any]:
    """Everything in a StudyResult except the models, as JSON-safe values."""
    return {
        "candidates": [vars(c) for c in res.candidates],
        "rows": [vars(r) for r in res.rows],
        "expert_val": res.expert_val,
        "expert_test": res.expert_test,
        "seconds": res.seconds,
        "fit_stats": res.fit_stats,
        "learned": res.learned,
        "selected": res.selected_row.name if res.selected_row else None,
    }


def result_from_json(data: dict[str, Any]) -> StudyResult:
    """Inverse of `result_to_json`; the selected model must be rebuilt with `rebuild_selected`."""
    res = StudyResult(
        candidates=[Candidate(**c) for c in data["candidates"]],
        rows=[Row(**r) for r in data["rows"]],
        expert_val=data["expert_val"],
        expert_test=data["expert_test"],
        seconds=data["seconds"],
        fit_stats=data["fit_stats"],
        learned=data.get("learned", {}),
    )
    res.selected_row = next((r for r in res.rows if r.name == data["selected"]), None)
    return res

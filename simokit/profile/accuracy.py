"""Accuracy of a bundle's merged graph against its separate expert graphs, through the runtime path.

`simokit profile BUNDLE --data scenes` answers "what does one engine cost me in accuracy?" next to
"what does it save in time?": every task's metrics from model.onnx and from experts/<task>.onnx on
the same labelled images, and the merged graph's normalised score relative to the experts.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from simokit.calib.graph_eval import eval_tasks, evaluate_graph, load_labelled
from simokit.errors import DataError
from simokit.runtime.bundle import MODEL_FILE, read_meta
from simokit.tasks.score import task_scores


def bundle_accuracy(bundle: Path, data_spec: str, threads: int | None = None) -> dict[str, Any]:
    """{'merged': metrics, 'experts': metrics, 'scores': per-task normalised, 'mean': their mean}."""
    data = load_labelled(data_spec, progress=False)
    if data is None:
        raise DataError("profile --data needs labelled images: 'scenes[:split]' or an NYUv2-layout folder")
    meta = read_meta(bundle)
    tasks = eval_tasks(meta, data)
    if not tasks:
        raise DataError(f"{data_spec}: no labels for any of the bundle's tasks ({', '.join(meta.tasks)})")
    merged = evaluate_graph(meta, bundle / MODEL_FILE, data, threads=threads)
    experts = {}
    for task in tasks:
        alone = dataclasses.replace(meta, tasks=(task,), outputs={task: meta.outputs[task]})
        graph = bundle / "experts" / f"{task}.onnx"
        if not graph.is_file():
            raise DataError(
                f"{bundle}: no expert graph {graph.name} to compare with; rebuild with `simokit build`"
            )
        experts.update(evaluate_graph(alone, graph, data, threads=threads))
    scores = task_scores(merged, experts)
    return {
        "data": data_spec,
        "images": len(data),
        "merged": merged,
        "experts": experts,
        "scores": scores,
        "mean": sum(scores.values()) / len(scores),
    }


def accuracy_table(result: dict[str, Any]) -> str:
    """Markdown: each task's metrics for the merged graph and the experts, and the normalised score."""
    lines = [
        f"accuracy on {result['data']} ({result['images']} images): merged vs separate experts",
        "",
        "| task | metric | merged | experts |",
        "|---|---|---|---|",
    ]
    for task, metrics in result["merged"].items():
        for name, value in metrics.items():
            lines.append(f"| {task} | {name} | {value:.3f} | {result['experts'][task][name]:.3f} |")
    per_task = ", ".join(f"{t} {s:.3f}" for t, s in result["scores"].items())
    lines += ["", f"normalised score (1.0 = experts): {per_task}; mean {result['mean']:.3f}"]
    return "\n".join(lines)

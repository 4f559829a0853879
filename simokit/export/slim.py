"""Graph simplification with onnxslim, accepted only when the outputs stay equal.

The tracer leaves shape arithmetic, Identity and Constant nodes that a runtime folds anyway but
that slow TensorRT's parser and clutter inspection. onnxslim folds them; because a rewrite could in
principle change numerics (fused ops sum in another order), the slimmed graph replaces the original
only if ONNX Runtime gives the same outputs on the same random input to within `SLIM_TOLERANCE`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from onnx import ModelProto

from simokit.runtime.onnx_session import CPU, session_for

# relative (to max(|x|, 1)): fused kernels reorder float32 sums (~1e-6), 10x under the export tolerance
SLIM_TOLERANCE = 1e-5


@dataclass
class SlimReport:
    """What simplification did: node counts before/after, the check's error, or why it was skipped."""

    applied: bool
    nodes_before: int
    nodes_after: int
    max_rel_diff: float | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, object]:
        """JSON-safe form for the graph's metadata."""
        return asdict(self)


def slim_model(model: ModelProto, example: np.ndarray, input_name: str) -> tuple[ModelProto, SlimReport]:
    """Simplify `model`; keep the result only if it matches the original on `example`."""
    before = len(model.graph.node)
    try:
        import onnxslim
    except ImportError:
        return model, SlimReport(False, before, before, reason="onnxslim is not installed")
    try:
        slim = onnxslim.slim(model)
    except Exception as exc:  # onnxslim raises assorted internal errors on graphs it cannot handle
        return model, SlimReport(False, before, before, reason=f"onnxslim failed: {str(exc).splitlines()[0]}")
    diff = max_output_diff(model, slim, {input_name: example})
    report = SlimReport(diff <= SLIM_TOLERANCE, before, len(slim.graph.node), diff)
    if not report.applied:
        report.reason = f"outputs changed by {diff:.2e} > {SLIM_TOLERANCE:g}; kept the unsimplified graph"
        return model, report
    return slim, report


def max_output_diff(a: ModelProto, b: ModelProto, feeds: dict[str, np.ndarray]) -> float:
    """Largest relative difference between two graphs' outputs on ONNX Runtime CPU."""
    outs = []
    for model in (a, b):
        session = session_for(model.SerializeToString(), providers=CPU)
        outs.append(session.run(None, feeds))
    worst = 0.0
    for x, y in zip(*outs, strict=True):
        x64, y64 = x.astype(np.float64), y.astype(np.float64)
        worst = max(worst, float((np.abs(x64 - y64) / np.maximum(np.abs(x64), 1.0)).max(initial=0.0)))
    return worst

"""Run the torch model and the exported ONNX graph on the same inputs and compare every output.

FP32 exports must agree to 1e-4 on normalised outputs: absolute for logits and unit normals,
relative for metric depth (float32 rounding of exp() at 40 m alone is ~5e-6 m per ulp, so an
absolute bound would test the unit, not the export). Segmentation is also compared as label
agreement, since an argmax can flip where two logits tie within tolerance.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from simokit.errors import SimokitError
from simokit.export.onnx import INPUT_NAME, ExportModule, ExportSpec
from simokit.models import MultiTaskModel
from simokit.tasks.spec import OutputKind, Tolerance, get_task, output_kind

FP32_TOLERANCE = 1e-4
LABEL_AGREEMENT = 0.999  # class-label outputs: fraction of pixels whose argmax must match
# FP16 graphs (measured on the demo bundle: seg logits 1.7e-2, depth 1.0% relative, normals 3.3e-3,
# 99.93% of seg labels equal); the bound leaves ~3x headroom and still catches overflow or a broken cast.
FP16_TOLERANCE = 5e-2
FP16_LABEL_AGREEMENT = 0.99


class VerificationError(SimokitError):
    """The exported graph's outputs differ from torch beyond the tolerance."""


@dataclass
class OutputError:
    """Differences of one output over all verification images (depth: relative to max(depth, 1 m))."""

    max_abs: float
    mean_abs: float
    label_agreement: float | None = None
    ok: bool = True


@dataclass
class VerifyReport:
    """Per-output errors, the tolerance used and how many images were compared."""

    outputs: dict[str, OutputError] = field(default_factory=dict)
    tolerance: float = FP32_TOLERANCE
    images: int = 0
    label_agreement: float = LABEL_AGREEMENT
    size: tuple[int, int] = (0, 0)

    @property
    def passed(self) -> bool:
        """True when every output is within its tolerance."""
        return all(e.ok for e in self.outputs.values())

    def table(self) -> str:
        """A markdown table of the errors."""
        lines = ["| output | max err | mean err | seg label agreement |", "|---|---|---|---|"]
        for name, e in self.outputs.items():
            agree = f"{100 * e.label_agreement:.3f}%" if e.label_agreement is not None else "-"
            lines.append(f"| {name} | {e.max_abs:.2e} | {e.mean_abs:.2e} | {agree} |")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        """JSON-safe form for the bundle's metadata."""
        return {
            "tolerance": self.tolerance,
            "label_agreement": self.label_agreement,
            "images": self.images,
            "size": list(self.size),
            "outputs": {k: asdict(v) for k, v in self.outputs.items()},
        }


@torch.no_grad()
def verify_onnx(
    model: MultiTaskModel,
    spec: ExportSpec,
    onnx_path: str | Path,
    inputs: np.ndarray,
    tolerance: float = FP32_TOLERANCE,
    raise_on_failure: bool = True,
    label_agreement: float = LABEL_AGREEMENT,
    session: Any = None,
    graph_inputs: np.ndarray | None = None,
) -> VerifyReport:
    """Compare torch and ONNX Runtime (CPU) on `inputs` laid out as `spec` says.

    `session`: an open ONNX Runtime session to check instead of opening `onnx_path` (which then
    only names the graph in messages), e.g. one with weights overridden as a delta bundle does.
    `graph_inputs`: what the graph gets instead of `inputs` (a frame-IO graph: the same frames BGR).
    """
    from simokit.runtime.onnx_session import CPU, session_for

    if session is None:
        session = session_for(onnx_path, providers=CPU)
    writable = np.require(inputs, requirements=("C", "W"))  # torch cannot wrap read-only memory
    reference = ExportModule(model, spec).eval()(torch.from_numpy(writable))
    actual = session.run(list(spec.tasks), {INPUT_NAME: inputs if graph_inputs is None else graph_inputs})
    size = inputs.shape[1:3] if spec.input_kind == "uint8" else inputs.shape[2:4]
    report = VerifyReport(
        tolerance=tolerance,
        images=int(inputs.shape[0]),
        label_agreement=label_agreement,
        size=(int(size[0]), int(size[1])),
    )
    for task, ref, got in zip(spec.tasks, reference, actual, strict=True):
        err = _compare(task, ref.numpy(), got)
        labels_only = output_kind(task, spec.seg_output) is OutputKind.LABELS
        agree_ok = (err.label_agreement or 0.0) >= label_agreement
        err.ok = agree_ok if labels_only else err.max_abs <= tolerance
        report.outputs[task] = err
    bad = [t for t, e in report.outputs.items() if not e.ok]
    if bad and raise_on_failure:
        raise VerificationError(
            f"{onnx_path}: output(s) {', '.join(bad)} differ from torch beyond tolerance "
            f"(abs {tolerance:g}, label agreement {label_agreement:.1%}) at {size[0]}x{size[1]}; "
            "see the verification table"
        )
    return report


def _compare(task: str, ref: np.ndarray, got: np.ndarray) -> OutputError:
    """Differences of one output by its task's tolerance kind, plus label agreement for class outputs."""
    spec = get_task(task)
    diff = np.abs(ref.astype(np.float64) - got.astype(np.float64))  # labels: uint8 vs int32 ids
    if spec.tolerance is Tolerance.RELATIVE:
        diff = diff / np.maximum(np.abs(ref.astype(np.float64)), 1.0)
    err = OutputError(float(diff.max()), float(diff.mean()))
    if spec.classes:
        ref_labels = ref if ref.ndim == 3 else ref.argmax(axis=1)  # (B, H, W) when exported as labels
        got_labels = got if got.ndim == 3 else got.argmax(axis=1)
        err.label_agreement = float((ref_labels == got_labels).mean())
    return err

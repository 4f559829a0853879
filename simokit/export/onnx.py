"""One multi-output ONNX graph from a multi-task model, with pre-processing baked in.

IO "model" (the model's size): input "float" (B, 3, H, W) float32 already normalised, or "uint8"
(B, H, W, 3) RGB; the cast, layout change and mean/std normalisation run inside the graph so the
robot side does no float work. Outputs are named after the tasks and hold their table's output
kind: seg logits (or class labels with seg_output="labels"), metric depth, unit normals, values.
IO "frame": the model-size graph wrapped by export.frame_io, so it takes uint8 BGR frames of
any size and returns labels, depth and normals at the size `output_size` names.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from simokit.cache import atomic_path
from simokit.errors import ConfigError, ShapeError
from simokit.export.frame_io import FRAME_OPSET, parse_output_size, wrap_frame_io
from simokit.export.slim import slim_model
from simokit.models import DinoVisionTransformer, MultiTaskModel
from simokit.runtime.bundle import Channels, GraphIO
from simokit.tasks.spec import OutputKind, output_kind

INPUT_KINDS = ("float", "uint8")
SEG_OUTPUTS = (OutputKind.LOGITS.value, OutputKind.LABELS.value)  # for tasks whose outputs are classes
INPUT_NAME = "image"


@dataclass(frozen=True)
class ExportSpec:
    """How the graph is laid out: input kind and size, seg output, dynamic axes, opset, precision.

    With dynamic_hw the graph takes any height/width that are multiples of 14 (height/width here
    are the size it is traced and verified at). fp16 adds a half-precision copy of the graph.
    """

    tasks: tuple[str, ...]
    height: int
    width: int
    input_kind: str = "float"
    seg_output: str = "logits"
    dynamic_hw: bool = False
    opset: int = 17
    slim: bool = True
    fp16: bool = False
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    io: str = GraphIO.MODEL.value
    output_size: str = "input"  # frame IO: "input", "model" or "HxW"
    channels: str = Channels.BGR.value  # frame IO: the frames' channel order

    def __post_init__(self) -> None:
        if self.input_kind not in INPUT_KINDS:
            raise ConfigError(f"input kind '{self.input_kind}' is not one of {', '.join(INPUT_KINDS)}")
        if self.seg_output not in SEG_OUTPUTS:
            raise ConfigError(f"seg output '{self.seg_output}' is not one of {', '.join(SEG_OUTPUTS)}")
        if self.height % 14 or self.width % 14:
            raise ShapeError(
                f"export size {self.height}x{self.width} must be a multiple of the patch size 14"
            )
        if self.opset < 17:
            raise ConfigError(f"opset {self.opset} < 17: LayerNormalization needs opset 17")
        if self.io not in {e.value for e in GraphIO} or self.channels not in {e.value for e in Channels}:
            raise ConfigError(f"graph IO '{self.io}' / channels '{self.channels}': IO is model or frame, "
                              "channels rgb or bgr")  # fmt: skip
        if self.io == GraphIO.FRAME.value:
            parse_output_size(self.output_size)
            if self.input_kind != "uint8" or self.dynamic_hw:
                raise ConfigError("frame IO takes uint8 frames of any size: use it without --input float "
                                  "and without --dynamic-size")  # fmt: skip

    def model_size_spec(self) -> ExportSpec:
        """The spec of the model-size graph that frame IO wraps (itself for model IO)."""
        if self.io != GraphIO.FRAME.value:
            return self
        return replace(self, io=GraphIO.MODEL.value, seg_output="logits", opset=max(self.opset, FRAME_OPSET))

    def input_shape(self, batch: int = 1, size: tuple[int, int] | None = None) -> tuple[int, int, int, int]:
        """Shape of one input batch in this spec's layout (at `size` instead of the spec's, if given)."""
        h, w = size or (self.height, self.width)
        if self.input_kind == "uint8":
            return (batch, h, w, 3)
        return (batch, 3, h, w)

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """ONNX dynamic axes: batch always, height/width when dynamic_hw."""
        hw = {"uint8": {1: "height", 2: "width"}, "float": {2: "height", 3: "width"}}[self.input_kind]
        axes: dict[str, dict[int, str]] = {INPUT_NAME: {0: "batch", **(hw if self.dynamic_hw else {})}}
        for task in self.tasks:
            labels = output_kind(task, self.seg_output) is OutputKind.LABELS
            spatial = {1: "height", 2: "width"} if labels else {2: "height", 3: "width"}
            axes[task] = {0: "batch", **(spatial if self.dynamic_hw else {})}
        return axes


class InputAdapter(nn.Module):
    """The graph's pre-processing: uint8 (B, H, W, 3) RGB -> normalised (B, 3, H, W); floats pass through."""

    def __init__(self, spec: ExportSpec) -> None:
        super().__init__()
        self.kind = spec.input_kind
        self.mean: Tensor
        self.inv_std: Tensor
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("inv_std", 1.0 / (torch.tensor(spec.std).view(1, 3, 1, 1) * 255.0))

    def forward(self, x: Tensor) -> Tensor:
        """Input in the spec's layout -> (B, 3, H, W) float32 normalised."""
        if self.kind == "uint8":
            # cast before the transpose: TensorRT's uint8 support is limited to I/O and casts
            return (x.float().permute(0, 3, 1, 2) - self.mean) * self.inv_std
        return x


class ExportModule(nn.Module):
    """Wraps a MultiTaskModel: optional uint8 pre-processing in, a tuple of task outputs out."""

    def __init__(self, model: MultiTaskModel, spec: ExportSpec) -> None:
        super().__init__()
        self.model = model.eval()
        self.spec = spec
        self.adapter = InputAdapter(spec)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """(B, 3, H, W) float or (B, H, W, 3) uint8 -> one tensor per task, in spec.tasks order."""
        out = self.model(self.adapter(x))
        results = []
        for task in self.spec.tasks:
            y = out[task]
            if output_kind(task, self.spec.seg_output) is OutputKind.LABELS:
                y = y.argmax(dim=1).to(torch.int32)
            results.append(y)
        return tuple(results)


def export_onnx(model: MultiTaskModel, spec: ExportSpec, path: str | Path) -> Path:
    """Write `model` as ONNX per `spec` (dynamic batch, optionally size), checked, slimmed, atomically."""

    missing = [t for t in spec.tasks if t not in model.heads]
    if missing:
        raise ConfigError(f"export: model has no head for task(s) {', '.join(missing)}")
    meta = {"simokit.tasks": ",".join(spec.tasks), "simokit.export": json.dumps(asdict(spec))}
    core = spec.model_size_spec()
    export_module(ExportModule(model, core), model.encoder, core, list(spec.tasks), path, meta)
    if core is not spec:
        frame_graph(model, spec, path, path)
    return Path(path)


def frame_graph(model: MultiTaskModel, spec: ExportSpec, core: str | Path, out: str | Path) -> Path:
    """Wrap the model-size graph at `core` (FP32 or FP16) into the frame-IO graph at `out`, atomically."""
    import onnx

    classes = {t: int(model.heads[t].cfg.out_channels) for t in spec.tasks}  # type: ignore[union-attr,arg-type]
    graph = wrap_frame_io(
        onnx.load(str(core)),
        spec.tasks,
        (spec.height, spec.width),
        spec.seg_output,
        spec.output_size,
        classes,
        bgr=spec.channels == Channels.BGR.value,
    )
    with atomic_path(Path(out)) as tmp:
        onnx.save(graph, str(tmp))
    return Path(out)


def export_module(
    module: nn.Module,
    encoder: DinoVisionTransformer,
    spec: ExportSpec,
    outputs: list[str],
    path: str | Path,
    meta: dict[str, str],
) -> Path:
    """Trace `module` (input laid out as `spec` says) to ONNX: checked, slimmed, metadata, atomic."""
    import onnx

    example = example_input(spec, batch=2)
    final = Path(path)
    axes = {k: v for k, v in spec.dynamic_axes().items() if k == INPUT_NAME}
    axes.update({name: {0: "batch"} for name in outputs if name not in spec.tasks})
    axes.update({k: v for k, v in spec.dynamic_axes().items() if k in outputs})
    encoder.dynamic_size_export = spec.dynamic_hw
    try:
        with atomic_path(final) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation notices are not actionable
            torch.onnx.export(
                module.eval(),
                (torch.from_numpy(example),),
                str(tmp),
                input_names=[INPUT_NAME],
                output_names=outputs,
                dynamic_axes=axes,
                opset_version=spec.opset,
                dynamo=False,
                do_constant_folding=True,
            )
            graph = onnx.load(str(tmp))
            onnx.checker.check_model(graph)
            meta = dict(meta)
            if spec.slim:
                graph, report = slim_model(graph, example, INPUT_NAME)
                meta["simokit.slim"] = json.dumps(report.to_dict())
            for key, value in meta.items():
                graph.metadata_props.add(key=key, value=value)
            onnx.save(graph, str(tmp))
    finally:
        encoder.dynamic_size_export = False
    return final


def example_input(
    spec: ExportSpec, batch: int = 1, size: tuple[int, int] | None = None, seed: int = 0
) -> np.ndarray:
    """Random input in the spec's layout (uint8 images or normalised floats), for tracing and checks."""
    rng = np.random.default_rng(seed)
    shape = spec.input_shape(batch, size)
    if spec.input_kind == "uint8":
        return rng.integers(0, 256, size=shape, dtype=np.uint8)
    return rng.standard_normal(shape).astype(np.float32)

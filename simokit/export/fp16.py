"""FP16 conversion of an exported graph, keeping the overflow-prone ops and their inputs in FP32.

ViTs in half precision overflow where values are summed or exponentiated: LayerNorm over the
residual stream, Softmax over attention logits, the depth head's exp and the normals' L2 norm.
Those nodes run in FP32 and, with `keep_producers`, so do the nodes that compute their inputs (the
residual Add before each LayerNorm, the scaled q·k product before each Softmax). Every other float
op computes in FP16; Cast nodes are inserted at each precision boundary, and the graph's inputs and
outputs keep their original types so callers and the bundle contract do not change.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import GraphProto, ModelProto, NodeProto

KEEP_FP32 = ("LayerNormalization", "Softmax", "Exp", "ReduceL2")
# Ops whose float inputs and outputs share one type T, so computing them in FP16 is a type change only.
# fmt: off
HALF_OPS = frozenset(
    {
        "Add", "Sub", "Mul", "Div", "MatMul", "Gemm", "Conv", "ConvTranspose", "Erf", "Sqrt", "Pow",
        "Relu", "Gelu", "Sigmoid", "Tanh", "Neg", "Abs", "Max", "Min", "Transpose", "Reshape", "Flatten",
        "Squeeze", "Unsqueeze", "Concat", "Split", "Slice", "Gather", "Expand", "Where", "Identity",
        "Clip", "BatchNormalization", "Resize", "ReduceMean", "ArgMax", "Equal", "Pad",
    }
)
# fmt: on
# Inputs that the ONNX spec types independently of the data (Resize's roi and scales stay float32).
FLOAT32_ONLY_INPUTS = {"Resize": (1, 2)}
FP16_MAX = 65504.0


@dataclass
class Fp16Report:
    """Which nodes stayed FP32 and how many casts the conversion added."""

    half_nodes: int = 0
    float_nodes: list[str] = field(default_factory=list)
    casts: int = 0
    clipped_constants: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """JSON-safe summary for the bundle's metadata."""
        return {
            "half_nodes": self.half_nodes,
            "fp32_nodes": len(self.float_nodes),
            "fp32_ops": sorted({n.split("|")[0] for n in self.float_nodes}),
            "casts": self.casts,
            "clipped_constants": self.clipped_constants,
        }


def convert_fp16(
    model: ModelProto, keep_ops: Iterable[str] = KEEP_FP32, keep_producers: bool = True
) -> tuple[ModelProto, Fp16Report]:
    """FP32 model -> (FP16 model with the same input and output types, what was converted)."""
    model = onnx.shape_inference.infer_shapes(model)
    graph = model.graph
    FLOAT, HALF = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
    dtypes = _tensor_types(graph)
    keep = _keep_set(graph, set(keep_ops), keep_producers)
    consts = {t.name: t for t in graph.initializer}
    report = Fp16Report()
    nodes: list[NodeProto] = []
    casts: dict[tuple[str, int], str] = {}
    half_consts: dict[str, str] = {}

    def cast(src: str, to: int) -> str:
        key = (src, to)
        if key not in casts:
            name = f"{src}::{'fp16' if to == HALF else 'fp32'}"
            nodes.append(onnx.helper.make_node("Cast", [src], [name], to=to, name=f"{name}/Cast"))
            casts[key] = name
            report.casts += 1
        return casts[key]

    def half_const(name: str) -> str:
        if name not in half_consts:
            values = onnx.numpy_helper.to_array(consts[name])
            if np.abs(values).max(initial=0.0) > FP16_MAX:
                report.clipped_constants.append(name)
            half = np.clip(values, -FP16_MAX, FP16_MAX).astype(np.float16)
            graph.initializer.append(onnx.numpy_helper.from_array(half, f"{name}::fp16"))
            half_consts[name] = f"{name}::fp16"
        return half_consts[name]

    for index, node in enumerate(graph.node):
        is_half = node.op_type in HALF_OPS and index not in keep and _has_float(node, dtypes, FLOAT)
        if node.op_type != "Cast":
            fixed = FLOAT32_ONLY_INPUTS.get(node.op_type, ())
            for i, src in enumerate(node.input):
                want = HALF if is_half and i not in fixed else FLOAT
                have = dtypes.get(src)
                if not src or have not in (FLOAT, HALF) or have == want:
                    continue
                node.input[i] = half_const(src) if want == HALF and src in consts else cast(src, want)
        if is_half:
            report.half_nodes += 1
            for out in node.output:
                if dtypes.get(out) == FLOAT:
                    dtypes[out] = HALF
        elif _has_float(node, dtypes, FLOAT):
            report.float_nodes.append(f"{node.op_type}|{node.name}")
        nodes.append(node)
    _restore_outputs(graph, nodes, dtypes, FLOAT, HALF)
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]
    _drop_unused_initializers(graph)
    model = onnx.shape_inference.infer_shapes(model)
    onnx.checker.check_model(model)
    return model, report


def _tensor_types(graph: GraphProto) -> dict[str, int]:
    types = {v.name: v.type.tensor_type.elem_type for v in [*graph.input, *graph.value_info, *graph.output]}
    types.update({t.name: t.data_type for t in graph.initializer})
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    types[node.output[0]] = attr.t.data_type
    return types


def _has_float(node: NodeProto, dtypes: dict[str, int], float_type: int) -> bool:
    return any(dtypes.get(t) == float_type for t in [*node.input, *node.output])


def _keep_set(graph: GraphProto, ops: set[str], producers: bool) -> set[int]:
    """Indices of the nodes that stay FP32 (protobuf wrappers have no stable identity, indices do)."""
    made_by = {out: i for i, node in enumerate(graph.node) for out in node.output}
    keep: set[int] = set()
    for i, node in enumerate(graph.node):
        if node.op_type not in ops:
            continue
        keep.add(i)
        if producers and node.input and node.input[0] in made_by:
            # The tensor reaching LayerNorm/Softmax is the one that overflows: compute it in FP32 too.
            keep.add(made_by[node.input[0]])
    return keep


def _restore_outputs(
    graph: GraphProto, nodes: list[NodeProto], dtypes: dict[str, int], float_type: int, half: int
) -> None:
    for out in graph.output:
        if dtypes.get(out.name) != half:
            continue
        internal = f"{out.name}::fp16"
        for node in nodes:
            node.input[:] = [internal if t == out.name else t for t in node.input]
            node.output[:] = [internal if t == out.name else t for t in node.output]
        cast = onnx.helper.make_node("Cast", [internal], [out.name], to=float_type, name=f"{out.name}/Cast")
        nodes.append(cast)


def _drop_unused_initializers(graph: GraphProto) -> None:
    used = {t for node in graph.node for t in node.input}
    keep = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)

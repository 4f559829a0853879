"""Which nodes of an exported graph are quantised, which stay in float, and why.

Only weighted layers (Conv, MatMul, Gemm with constant weights) are quantised: that is where INT8
pays (the GEMMs), and it is the placement TensorRT's explicit quantisation expects (Q/DQ on the
inputs of weighted layers). So LayerNormalization, Softmax, GELU, residual Adds and the pre-processing
of uint8 inputs never see a Q/DQ pair; activation x activation MatMuls (q·k, attention·v) stay
float as well. The last weighted layer of every head stays float by default: its output is the
prediction itself, where depth (log space) and normals lose most. Node blocks come from the
exporter's scope names, e.g. '/model/blocks.3/mlp/fc1/MatMul' is in block 'blocks.3'. A frame-IO
graph's own pre- and post-processing (nodes named 'frame/...', and everything inside its If
subgraphs, which are never searched) is not the model: it is never quantised.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from simokit.errors import ConfigError
from simokit.runtime.bundle import FRAME_SCOPE, BundleError, GraphIO, InputSpec

if TYPE_CHECKING:
    from onnx import ModelProto, NodeProto

WEIGHTED_OPS = ("Conv", "MatMul", "Gemm", "ConvTranspose")
FLOAT_OPS = ("LayerNormalization", "Softmax")  # never quantised: no Q/DQ on their inputs or outputs
_BLOCK = re.compile(r"^/(?:model/)?(blocks\.\d+|[^/]+)/")
_ONNX_UINT8, _ONNX_FLOAT = 2, 1


@dataclass
class QuantPlan:
    """Nodes to quantise, nodes kept float with the reason, and the quantisable nodes of each block."""

    quantize: list[str] = field(default_factory=list)
    kept_float: dict[str, str] = field(default_factory=dict)
    blocks: dict[str, list[str]] = field(default_factory=dict)

    def without(self, blocks: Sequence[str], reason: str = "sensitivity") -> QuantPlan:
        """A copy with every node of `blocks` moved to float."""
        drop = {n for b in blocks for n in self.blocks.get(b, [])}
        kept = dict(self.kept_float) | {n: f"{reason} ({block_of(n)})" for n in drop}
        left = {b: [n for n in ns if n not in drop] for b, ns in self.blocks.items()}
        return QuantPlan(
            [n for n in self.quantize if n not in drop], kept, {b: ns for b, ns in left.items() if ns}
        )

    def only(self, block: str) -> QuantPlan:
        """A copy that quantises just `block`."""
        return self.without([b for b in self.blocks if b != block], "one block at a time")


def block_of(name: str) -> str:
    """The block a node belongs to: 'blocks.3', 'patch_embed', a head's task, or 'graph'."""
    m = _BLOCK.match(name)
    return m.group(1) if m else "graph"


def name_nodes(model: ModelProto) -> None:
    """Give unnamed nodes a unique name, since quantisation selects nodes by name."""
    seen = {n.name for n in model.graph.node if n.name}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_{i}"
            while name in seen:
                name += "_"
            node.name = name
            seen.add(name)


def weighted_nodes(model: ModelProto) -> list[NodeProto]:
    """The model's weighted layers (not frame IO's) whose weight (second input) is a constant initializer."""
    inits = {t.name for t in model.graph.initializer}
    return [
        n
        for n in model.graph.node
        if n.op_type in WEIGHTED_OPS
        and len(n.input) > 1
        and n.input[1] in inits
        and not n.name.startswith(FRAME_SCOPE)
    ]


def head_output_layers(model: ModelProto) -> dict[str, str]:
    """{node name: output} for the last weighted layer on every path to each graph output."""
    producer = {o: n for n in model.graph.node for o in n.output}
    weighted = {n.name for n in weighted_nodes(model)}
    found: dict[str, str] = {}
    for out in model.graph.output:
        stack, seen = [out.name], set()
        while stack:
            node = producer.get(stack.pop())
            if node is None or node.name in seen:
                continue
            seen.add(node.name)
            if node.name in weighted:
                found[node.name] = out.name
            else:
                stack.extend(node.input)
    return found


def make_plan(model: ModelProto, exclude: Sequence[str] = (), keep_heads: bool = True) -> QuantPlan:
    """Plan the quantisation of `model`; `exclude` holds block names, op types or node-name globs."""
    nodes = weighted_nodes(model)
    plan = QuantPlan()
    heads = head_output_layers(model) if keep_heads else {}
    unused = list(exclude)
    for node in nodes:
        hits = [
            p
            for p in exclude
            if p in (block_of(node.name), node.op_type) or fnmatch.fnmatchcase(node.name, p)
        ]
        unused = [p for p in unused if p not in hits]
        if hits:
            plan.kept_float[node.name] = f"--exclude {hits[0]}"
        elif node.name in heads:
            plan.kept_float[node.name] = f"output layer of '{heads[node.name]}'"
        else:
            plan.quantize.append(node.name)
            plan.blocks.setdefault(block_of(node.name), []).append(node.name)
    if unused:
        blocks = sorted({block_of(n.name) for n in nodes})
        raise ConfigError(
            f"--exclude {', '.join(unused)} matches no weighted node; use a block ({', '.join(blocks)}), "
            "an op type (Conv, MatMul, Gemm) or a node-name glob such as '/model/blocks.0/*'"
        )
    if not plan.quantize:
        raise ConfigError("nothing left to quantise: every weighted node is excluded")
    return plan


def check_input(model: ModelProto, spec: InputSpec, where: str) -> None:
    """Refuse a graph whose single input is not the one meta.json describes (name, dtype, layout).

    A frame-IO graph takes uint8 frames of any size: its H and W must be free dimensions.
    """
    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    want_type, want_shape = (
        (_ONNX_UINT8, ["B", "H", "W", 3])
        if spec.io is GraphIO.FRAME
        else (_ONNX_UINT8, ["B", spec.height, spec.width, 3])
        if spec.kind == "uint8"
        else (_ONNX_FLOAT, ["B", 3, spec.height, spec.width])
    )
    expect = f"one input '{spec.name}' of {spec.kind} {want_shape}"
    if len(inputs) != 1 or inputs[0].name != spec.name:
        raise BundleError(
            f"{where}: graph inputs {[i.name for i in inputs]} do not match meta.json ({expect}); "
            "rebuild the bundle"
        )
    tensor = inputs[0].type.tensor_type
    free = "BHW?" if spec.io is GraphIO.FRAME else "BBBB"  # how a dimension without a fixed size reads
    dims = [
        d.dim_value if d.HasField("dim_value") else free[min(i, 3)] for i, d in enumerate(tensor.shape.dim)
    ]
    if tensor.elem_type != want_type or dims[1:] != want_shape[1:]:
        raise BundleError(
            f"{where}: input '{spec.name}' has type {tensor.elem_type} shape {dims}; meta.json says {expect}"
        )

"""Which parts of a ViT graph stay FP32 when TensorRT builds in FP16, chosen on the ONNX graph.

FP16 ViTs overflow in LayerNorm (the variance of a large residual stream), in the attention
softmax and in the residual stream of the last blocks, where activations are largest. The plan
keeps LayerNorm (the fused opset-17 op, or the ReduceMean/Sub/Pow/Sqrt/Div chain an older export
decomposes it into) and Softmax computing in FP32, delivers their inputs in FP32, and keeps the
residual Adds of the last K blocks in FP32. It is computed here with the `onnx` package, so it is
testable without TensorRT; the builder maps it onto TensorRT layers by ONNX node name
(`onnx_node_of`) and tensors by name (the ONNX parser keeps ONNX tensor names). A frame-IO
graph's own nodes (area resize by running sums of pixel values up to 2**24, argmax, upsampling,
renormalisation) are always FP32: in FP16 a running sum is exact only up to 2048.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from simokit.runtime.bundle import FRAME_SCOPE

if TYPE_CHECKING:
    from onnx import ModelProto, NodeProto

DEFAULT_LATE_BLOCKS = 2
BLOCK_INDEX = re.compile(r"blocks\.(\d+)[/.]")
LAYER_METADATA = re.compile(r"\[ONNX Layer: ([^|\]]+?)\s*(?:\||\])")
UNIQUE_SUFFIX = re.compile(r"_\d+$")


@dataclass(frozen=True)
class PinPlan:
    """ONNX node names to compute in FP32, ONNX tensor names to deliver in FP32, and why."""

    nodes: frozenset[str]
    tensors: frozenset[str]
    layernorms: int
    softmaxes: int
    residual_adds: tuple[str, ...]
    blocks: int
    frame_nodes: int = 0

    def summary(self) -> dict[str, int]:
        """Counts for the engine sidecar and the build log."""
        return {
            "fp32_nodes": len(self.nodes),
            "fp32_tensors": len(self.tensors),
            "layernorms": self.layernorms,
            "softmaxes": self.softmaxes,
            "residual_adds": len(self.residual_adds),
            "blocks": self.blocks,
            "frame_nodes": self.frame_nodes,
        }


def plan_fp32(model: ModelProto, late_blocks: int = DEFAULT_LATE_BLOCKS) -> PinPlan:
    """The FP32 plan for `model`: LayerNorm and Softmax everywhere, residual Adds of the last blocks."""
    nodes = list(model.graph.node)
    consts = {i.name for i in model.graph.initializer}
    live = _activations(nodes, {i.name for i in model.graph.input} - consts)
    norms = _layernorm_groups(nodes)
    norm_inputs = {group[0].input[0] for group in norms}
    softmax = [n for n in nodes if n.op_type == "Softmax"]
    residual = _residual_adds(nodes, live, norm_inputs)
    blocks = _block_numbers(residual)
    last = max(blocks, default=-1)
    late = tuple(n.name for n, b in zip(residual, blocks, strict=True) if b > last - late_blocks)
    frame = frame_nodes(model)
    pinned = {n.name for group in norms for n in group} | {n.name for n in softmax} | set(late) | frame
    tensors = norm_inputs | {n.input[0] for n in softmax}
    return PinPlan(
        nodes=frozenset(pinned),
        tensors=frozenset(t for t in tensors if t in live),
        layernorms=len(norms),
        softmaxes=len(softmax),
        residual_adds=late,
        blocks=len(set(blocks)),
        frame_nodes=len(frame),
    )


def frame_plan(model: ModelProto) -> PinPlan | None:
    """FP32 for a frame-IO graph's resizing and post-processing alone (the plan when pinning is off),
    or None for a model-size graph: running sums of pixel values need FP32 whatever the user chose."""
    frame = frame_nodes(model)
    return PinPlan(frozenset(frame), frozenset(), 0, 0, (), 0, len(frame)) if frame else None


def frame_nodes(model: ModelProto) -> frozenset[str]:
    """Names of the nodes frame IO added ("frame/..."), inside If branches too."""
    return frozenset(name for name in all_node_names(model) if name.startswith(FRAME_SCOPE))


def all_node_names(model: ModelProto) -> frozenset[str]:
    """Every node name of the graph and of its subgraphs (If branches), which TensorRT layers map back to."""
    names: set[str] = set()
    graphs = [model.graph]
    while graphs:
        graph = graphs.pop()
        for node in graph.node:
            names.add(node.name)
            graphs.extend(a.g for a in node.attribute if a.HasField("g"))
    return frozenset(names)


def has_qdq(model: ModelProto) -> bool:
    """True when the graph is explicitly quantised (QuantizeLinear/DequantizeLinear nodes)."""
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)


def onnx_node_of(layer_name: str, metadata: str, known: frozenset[str] | set[str]) -> str | None:
    """The ONNX node a TensorRT layer came from, or None.

    TensorRT >= 10 records "[ONNX Layer: <node> | ...]" as layer metadata; older parsers only name
    the layer after the node, adding "_<n>" when one node makes several layers.
    """
    found = LAYER_METADATA.search(metadata or "")
    if found and found.group(1) in known:
        return found.group(1)
    name = layer_name
    while name not in known:
        stripped = UNIQUE_SUFFIX.sub("", name)
        if stripped == name:
            return None
        name = stripped
    return name


def _activations(nodes: Sequence[NodeProto], inputs: set[str]) -> set[str]:
    """Tensors that depend on a graph input (constants and shape arithmetic on weights do not)."""
    live = set(inputs)
    for node in nodes:  # ONNX requires nodes in topological order
        if any(i in live for i in node.input):
            live.update(o for o in node.output if o)
    return live


def _layernorm_groups(nodes: Sequence[NodeProto]) -> list[list[NodeProto]]:
    """Each LayerNorm as its node list, first node consuming the normalised input."""
    groups = [[n] for n in nodes if n.op_type == "LayerNormalization"]
    consumers = _consumers(nodes)
    for mean in (n for n in nodes if n.op_type == "ReduceMean"):
        after = consumers.get(mean.output[0], [])
        subs = [c for c in after if c.op_type == "Sub" and c.input[0] == mean.input[0]]
        divs = [c for s in subs[:1] for c in consumers.get(s.output[0], []) if c.op_type == "Div"]
        if not divs:
            continue
        sub, div = subs[0], divs[0]
        chain = _between(nodes, sub, div)
        tail = _affine_tail(div, consumers)
        groups.append([mean, sub, *chain, div, *tail])
    return groups


def _between(nodes: Sequence[NodeProto], start: NodeProto, end: NodeProto) -> list[NodeProto]:
    """Nodes on a path from `start` to `end` (exclusive), e.g. Pow/ReduceMean/Add/Sqrt of a LayerNorm."""
    down = {o for o in start.output}
    reach: list[NodeProto] = []
    for node in nodes:
        if node is not end and any(i in down for i in node.input):
            down.update(node.output)
            reach.append(node)
    needed = set(end.input)
    path = []
    for node in reversed(reach):
        if any(o in needed for o in node.output):
            needed.update(node.input)
            path.append(node)
    return path[::-1]


def _affine_tail(div: NodeProto, consumers: dict[str, list[NodeProto]]) -> list[NodeProto]:
    """The scale Mul and shift Add that follow a decomposed LayerNorm, when present."""
    tail: list[NodeProto] = []
    out = div.output[0]
    for op in ("Mul", "Add"):
        nxt = [c for c in consumers.get(out, []) if c.op_type == op]
        if len(consumers.get(out, [])) != 1 or not nxt:
            break
        tail.append(nxt[0])
        out = nxt[0].output[0]
    return tail


def _residual_adds(nodes: Sequence[NodeProto], live: set[str], norm_inputs: set[str]) -> list[NodeProto]:
    """Adds of two activations where one is computed from the other (a skip connection) and whose
    sum feeds a LayerNorm: the pre-norm transformer's residual stream, not head or bias adds."""
    producer = {o: i for i, n in enumerate(nodes) for o in n.output}
    ancestors: list[int] = []  # bit j set in ancestors[i]: node j feeds node i
    for node in nodes:
        mask = 0
        for name in node.input:
            if name in producer:
                j = producer[name]
                mask |= ancestors[j] | (1 << j)
        ancestors.append(mask)
    adds = []
    for node in nodes:
        if node.op_type != "Add" or len(node.input) != 2 or node.output[0] not in norm_inputs:
            continue
        a, b = node.input
        if a not in live or b not in live or a not in producer or b not in producer:
            continue
        pa, pb = producer[a], producer[b]
        if ancestors[pb] >> pa & 1 or ancestors[pa] >> pb & 1:
            adds.append(node)
    return adds


def _block_numbers(adds: Sequence[NodeProto]) -> list[int]:
    """Each residual Add's transformer block: from its name ('blocks.7/...') when every Add has one,
    else by position (two residual Adds per pre-norm block)."""
    found = [BLOCK_INDEX.search(n.name) for n in adds]
    if adds and all(found):
        return [int(m.group(1)) for m in found if m]
    return [i // 2 for i in range(len(adds))]


def _consumers(nodes: Iterable[NodeProto]) -> dict[str, list[NodeProto]]:
    out: dict[str, list[NodeProto]] = {}
    for node in nodes:
        for name in node.input:
            out.setdefault(name, []).append(node)
    return out

"""A small builder for ONNX nodes appended to a graph: unique names, typed constants."""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx import NodeProto, TensorProto, numpy_helper
from onnx import helper as oh


class NodeBuilder:
    """Collects nodes and initializers under one name prefix, so they never clash with the graph's."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.nodes: list[NodeProto] = []
        self.initializers: list[TensorProto] = []
        self._count = 0

    def _name(self, op: str) -> str:
        self._count += 1
        return f"{self.prefix}/{op}_{self._count}"

    def op(self, op_type: str, inputs: list[str], output: str | None = None, **attrs: Any) -> str:
        """Append one node; returns the name of its (single) output."""
        name = self._name(op_type)
        out = output or f"{name}:0"
        self.nodes.append(oh.make_node(op_type, inputs, [out], name=name, **attrs))
        return out

    def const(self, value: np.ndarray) -> str:
        """An initializer holding `value`; returns its name."""
        name = self._name("const")
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def const_i64(self, values: list[int] | int) -> str:
        """An int64 constant: a 1-D tensor from a list, a scalar from an int."""
        return self.const(np.array(values, np.int64))

    def const_i32(self, value: int) -> str:
        """An int32 scalar constant."""
        return self.const(np.array(value, np.int32))

    def const_f32(self, value: float) -> str:
        """A float32 scalar constant."""
        return self.const(np.array(value, np.float32))

    def const_f64(self, value: float) -> str:
        """A float64 scalar constant."""
        return self.const(np.array(value, np.float64))

    def const_f64_range(self, m: int) -> str:
        """0 .. m-1 as a float64 column (m, 1)."""
        return self.const(np.arange(m, dtype=np.float64)[:, None])

"""Every ONNX Runtime session in simokit is opened here: options, providers and load errors written once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from simokit.runtime.bundle import BundleError

CPU = ("CPUExecutionProvider",)
# CUDA first where onnxruntime-gpu is installed; providers missing from this build are left out.
PREFERRED = ("CUDAExecutionProvider", "CPUExecutionProvider")


def session_for(
    graph: str | Path | bytes,
    threads: int | None = None,
    providers: Sequence[Any] | None = None,
    *,
    spin: bool = True,
    extended_only: bool = False,
    initializers: Mapping[str, np.ndarray] | None = None,
) -> Any:
    """An `onnxruntime.InferenceSession` for a graph file (or serialized bytes).

    Args:
        graph: path to a .onnx file, or the bytes of a serialized ModelProto.
        threads: intra-op threads; None lets ONNX Runtime use every core.
        providers: execution providers in priority order (names or (name, options) pairs); None
            means CUDA when this ONNX Runtime build has it, else CPU. Names this build lacks are dropped.
        spin: False stops idle threads busy-waiting after a run; sessions that take turns on the
            same cores need that, or the spinning threads of one take the cores from the next.
        extended_only: cap graph optimisation at the extended level.
        initializers: weights that override the graph's by name (kept alive with the session).

    Returns:
        The session; a graph ONNX Runtime cannot load raises BundleError naming it.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    if not spin:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if extended_only or initializers:
        # The all-level layout pass (NCHWc) rewrites Conv weights from the graph's own values
        # before overrides apply, so a patch embedding would keep the base weights. Extended
        # level runs ViT graphs at the same speed.
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    values = [ort.OrtValue.ortvalue_from_numpy(a) for a in (initializers or {}).values()]
    for name, value in zip(initializers or {}, values, strict=True):
        opts.add_initializer(name, value)
    available = ort.get_available_providers()
    wanted = list(PREFERRED if providers is None else providers)
    chosen = [p for p in wanted if (p if isinstance(p, str) else p[0]) in available]
    source = graph if isinstance(graph, bytes) else str(graph)
    where = "the graph" if isinstance(graph, bytes) else str(graph)
    try:
        session = ort.InferenceSession(source, opts, providers=chosen)
    except Exception as exc:  # ORT raises its own private exception types for bad graphs
        raise BundleError(f"{where}: ONNX Runtime cannot load it ({str(exc).splitlines()[0]})") from None
    # ORT reads overridden weights in place (no copy): the arrays must live as long as the session
    session._simokit_overrides = values
    return session

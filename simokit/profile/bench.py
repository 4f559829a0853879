"""What the machine can do: its matmul peak, and this process's resident memory.

Needs numpy and ONNX Runtime only, so a robot can profile a bundle without torch. Timing itself
is simokit.runtime.timing; sessions are simokit.runtime.onnx_session's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from simokit.runtime.onnx_session import CPU, session_for
from simokit.runtime.timing import time_calls


def matmul_peak_gflops(n: int = 2048, threads: int | None = None, iters: int = 10) -> tuple[float, str]:
    """GFLOP/s of an n x n float32 matmul: in ONNX Runtime when onnx is installed, else numpy."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    flops = 2.0 * n**3
    try:
        from onnx import TensorProto, helper
    except ImportError:
        stats = time_calls(lambda: a @ a, 1, warmup=2, iters=iters)
        return flops / (stats.p50_ms / 1000.0) / 1e9, "numpy"
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])],
        "matmul",
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [n, n]) for x in ("a", "b")],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    sess = session_for(model.SerializeToString(), threads, CPU)
    stats = time_calls(lambda: sess.run(None, {"a": a, "b": a}), 1, warmup=2, iters=iters)
    return flops / (stats.p50_ms / 1000.0) / 1e9, "onnxruntime"


def rss_mb() -> float:
    """Current resident memory of this process in MiB (Linux /proc; 0 where unavailable)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    import os

    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20

"""ONNX Runtime engine: CPU everywhere, CUDA where onnxruntime-gpu is installed, TensorRT on request.

The TensorRT route ('ort-tensorrt') lets ONNX Runtime build TensorRT engines itself and keeps them
(and the timing cache) in `<bundle>/ort-trt-cache`, so only the first start on a device is slow;
nodes TensorRT cannot take run on CUDA, then CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from simokit.runtime.bundle import GRAPH_FILES, HOW_TO_ADD, MODEL_FILE, BundleError, BundleMeta
from simokit.runtime.capabilities import OpenOptions
from simokit.runtime.capabilities import backend as backend_entry
from simokit.runtime.engine import Engine
from simokit.runtime.onnx_session import PREFERRED, session_for
from simokit.runtime.output_buffers import OutputBuffers

TRT_PROVIDER = "TensorrtExecutionProvider"
TRT_CACHE_DIR = "ort-trt-cache"
ROUTES = ("default", "tensorrt")


class OrtEngine(Engine):
    """Runs a bundle's model.onnx with ONNX Runtime (`initializers` override weights by name)."""

    backend = "onnxruntime"

    def __init__(
        self,
        root: Path,
        meta: BundleMeta,
        threads: int | None = None,
        route: str = "default",
        fp16: bool = False,
        graph: str = MODEL_FILE,
        initializers: dict[str, np.ndarray] | None = None,
        providers: Sequence[Any] | None = None,
        spin: bool = True,
    ) -> None:
        self.meta = meta  # providers None: session_for's default, CUDA where installed, then CPU
        if route == "tensorrt":
            import onnxruntime as ort

            available = ort.get_available_providers()
            if TRT_PROVIDER not in available:
                entry = backend_entry("ort-tensorrt")
                raise BundleError(
                    f"ONNX Runtime here has no {TRT_PROVIDER} (providers: {', '.join(available)}); "
                    f"install {entry.install}"
                )
            self.backend = "ort-tensorrt"
            providers = [(TRT_PROVIDER, trt_provider_options(root, meta, fp16)), *(providers or PREFERRED)]
        self.session = session_for(root / graph, threads, providers, initializers=initializers, spin=spin)
        self.providers = list(self.session.get_providers())
        names = [o.name for o in self.session.get_outputs()]
        if names != list(meta.tasks):
            raise BundleError(f"{root}: graph outputs {names} differ from meta.json tasks {list(meta.tasks)}")
        self._buffers: OutputBuffers | None = None

    def reuse_outputs(self, on: bool = True) -> None:
        """Write outputs into arrays allocated once per frame size (ONNX Runtime IO binding).

        Each infer() then overwrites the arrays the previous one returned: copy what you keep.
        """
        self._buffers = OutputBuffers(self.session, self.meta) if on else None

    def _run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        if self._buffers is not None:
            return self._buffers.run(x)
        outs = self.session.run(list(self.meta.tasks), {self.meta.input.name: x})
        return dict(zip(self.meta.tasks, outs, strict=True))

    def describe(self) -> str:
        """Backend and the execution providers in use."""
        return f"onnxruntime ({', '.join(self.session.get_providers())})"


def open_default(root: Path, meta: BundleMeta, opts: OpenOptions) -> OrtEngine:
    """The 'onnxruntime' opener: the bundle's graph for `precision` (model.onnx for FP32)."""
    precision = opts.precision
    graph = GRAPH_FILES[precision or "fp32"]
    if not (root / graph).is_file():
        raise BundleError(
            f"{root}: no {graph} for precision '{precision}'; add it with {HOW_TO_ADD[precision or 'fp32']}"
        )
    return OrtEngine(root, meta, threads=opts.threads, graph=graph, spin=opts.spin)


def open_tensorrt(root: Path, meta: BundleMeta, opts: OpenOptions) -> OrtEngine:
    """The 'ort-tensorrt' opener: TensorRT builds its own FP16/INT8 engine from the FP32 graph."""
    fp16 = opts.precision == "fp16"
    return OrtEngine(root, meta, threads=opts.threads, route="tensorrt", fp16=fp16, spin=opts.spin)


def trt_provider_options(root: Path, meta: BundleMeta, fp16: bool) -> dict[str, str]:
    """TensorRT provider options: engine and timing caches in the bundle, the batch profile, FP16.

    FP16 keeps LayerNorm's reductions in FP32 (the provider's own LayerNorm fallback switch).
    """
    from simokit.runtime.trt.profiles import profile_for

    cache = root / TRT_CACHE_DIR
    try:
        cache.mkdir(exist_ok=True)
    except OSError as exc:
        raise BundleError(f"{cache}: cannot create the engine cache ({exc.strerror})") from None
    spec = meta.input
    hw = (spec.height, spec.width)
    prof = profile_for(spec.name, ["B", *hw, 3] if spec.kind == "uint8" else ["B", 3, *hw], spec.kind)
    names = ("min", "opt", "max")
    dims = {k: f"{spec.name}:{'x'.join(map(str, v))}" for k, v in zip(names, prof.shapes(), strict=True)}
    flag = "True" if fp16 else "False"
    return {
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(cache),
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": str(cache),
        "trt_fp16_enable": flag,
        "trt_layer_norm_fp32_fallback": flag,
        "trt_profile_min_shapes": dims["min"],
        "trt_profile_opt_shapes": dims["opt"],
        "trt_profile_max_shapes": dims["max"],
    }

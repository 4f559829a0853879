"""ONNX Runtime engine: CPU everywhere, CUDA where onnxruntime-gpu is installed, TensorRT on request.

The TensorRT route ('ort-tensorrt') lets ONNX Runtime build TensorRT engines itself and keeps them
(and the timing cache) in `<bundle>/ort-trt-cache`, so only the first start on a device is slow;
nodes TensorRT cannot take run on CUDA, then CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from simokit.runtime.bundle import MODEL_FILE, BundleError, BundleMeta
from simokit.runtime.capabilities import backend as backend_entry
from simokit.runtime.engine import Engine

PREFERRED = ("CUDAExecutionProvider", "CPUExecutionProvider")
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
    ) -> None:
        import onnxruntime as ort

        self.meta = meta
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        if initializers:
            # The all-level layout pass (NCHWc) rewrites Conv weights from the graph's own values
            # before overrides apply, so a patch embedding would keep the base weights: seen as
            # wrong outputs in the build's verification. Extended level: same speed on ViT graphs.
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        # ORT reads overridden weights in place (no copy): keep the arrays alive with the session
        self._overrides = [ort.OrtValue.ortvalue_from_numpy(a) for a in (initializers or {}).values()]
        for name, value in zip(initializers or {}, self._overrides, strict=True):
            opts.add_initializer(name, value)
        available = ort.get_available_providers()
        providers: list[Any] = [p for p in PREFERRED if p in available]
        if route == "tensorrt":
            if TRT_PROVIDER not in available:
                entry = backend_entry("ort-tensorrt")
                raise BundleError(
                    f"ONNX Runtime here has no {TRT_PROVIDER} (providers: {', '.join(available)}); "
                    f"install {entry.install}"
                )
            self.backend = "ort-tensorrt"
            providers.insert(0, (TRT_PROVIDER, trt_provider_options(root, meta, fp16)))
        self.providers = [p if isinstance(p, str) else p[0] for p in providers]
        try:
            self.session = ort.InferenceSession(str(root / graph), opts, providers=providers)
        except Exception as exc:  # ORT raises its own private exception types for bad graphs
            raise BundleError(
                f"{root / graph}: ONNX Runtime cannot load it ({str(exc).splitlines()[0]})"
            ) from None
        names = [o.name for o in self.session.get_outputs()]
        if names != list(meta.tasks):
            raise BundleError(f"{root}: graph outputs {names} differ from meta.json tasks {list(meta.tasks)}")

    def _run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        outs = self.session.run(list(self.meta.tasks), {self.meta.input.name: x})
        return dict(zip(self.meta.tasks, outs, strict=True))

    def describe(self) -> str:
        """Backend and the execution providers in use."""
        return f"onnxruntime ({', '.join(self.session.get_providers())})"


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

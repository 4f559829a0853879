#!/usr/bin/env bash
# One-shot GPU check for a lent CUDA machine (run from the repo root; ~3-5 min):
#   1. GPU, driver, torch CUDA;  2. ONNX Runtime CUDA EP vs CPU on the bundle (outputs within
#   tolerance, p50 latency of the merged graph vs the separate experts at batch 1 and 8);
#   3. if TensorRT imports: build-engine FP32 and FP16, compare with ORT CPU, time (+ CUDA graphs).
# BUNDLE: first argument, else ./bundle (copy the demo bundle there; `bundle/` is git-ignored and
# 54 MB, so it can travel with the tree), else a tiny random-weights bundle built here with torch.
# Results go to stdout and to ${OUT:-/tmp/gpu_check}/gpu_check.json.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT_DIR=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT_DIR"
BUNDLE=${1:-bundle}

nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv,noheader || true
$PY -m pip install --quiet --no-deps -e . >/dev/null 2>&1 || export PYTHONPATH=$PWD
if ! $PY -c "import onnxruntime as o, sys; sys.exit('CUDAExecutionProvider' not in o.get_available_providers())"; then
    # lent machines are usually offline: give pip a short try, then carry on without the CUDA EP
    timeout 180 $PY -m pip install --quiet onnxruntime-gpu || echo "gpu_check: onnxruntime-gpu not installable here"
fi
if [ ! -f "$BUNDLE/meta.json" ]; then
    BUNDLE="$OUT_DIR/tiny-bundle"
    $PY - "$BUNDLE" <<'EOF' || { echo "gpu_check: no bundle and none could be built"; exit 1; }
import sys, numpy as np, torch
from simokit.export.bundle import write_bundle
from simokit.export.onnx import ExportSpec
from simokit.models import HeadConfig, MultiTaskModel, build_encoder, build_head
torch.manual_seed(0)
heads = {"seg": build_head(HeadConfig("linear", 11, "none"), 192), "depth": build_head(HeadConfig("linear", 1, "exp"), 192),
         "normal": build_head(HeadConfig("linear", 3, "normalize"), 192)}
model = MultiTaskModel(build_encoder("vitmicro14"), heads).eval()
frames = np.random.default_rng(0).integers(0, 256, size=(2, 112, 112, 3), dtype=np.uint8)
write_bundle(sys.argv[1], model, ExportSpec(tuple(heads), 112, 112, input_kind="uint8"), frames)
EOF
fi

$PY - "$BUNDLE" "$OUT_DIR" <<'EOF'
import json, sys, time
from pathlib import Path
import numpy as np
import onnxruntime as ort

bundle, out = Path(sys.argv[1]), Path(sys.argv[2])
res: dict = {"bundle": str(bundle), "ort": ort.__version__, "providers": ort.get_available_providers()}
try:
    import torch
    res["torch_cuda"] = torch.cuda.is_available() and torch.cuda.get_device_name(0)
except ImportError:
    res["torch_cuda"] = "torch not installed"
from simokit.runtime.bundle import read_meta
from simokit.runtime import load
from simokit.runtime.engine import normalize_nchw
meta = read_meta(bundle)
spec = meta.input
frames = {b: np.random.default_rng(b).integers(0, 256, (b, spec.height, spec.width, 3), np.uint8) for b in (1, 8)}
x = {b: f if spec.kind == "uint8" else normalize_nchw(f, spec.mean, spec.std) for b, f in frames.items()}

def p50(fn, n=50):
    for _ in range(5): fn()
    t = []
    for _ in range(n):
        s = time.perf_counter(); fn(); t.append(time.perf_counter() - s)
    return round(1e3 * float(np.median(t)), 3)

def session(path, prov):
    return ort.InferenceSession(str(path), providers=[prov])

cpu = session(bundle / "model.onnx", "CPUExecutionProvider")
ref = dict(zip(meta.tasks, cpu.run(None, {meta.input.name: x[8]})))
if "CUDAExecutionProvider" in res["providers"]:
    gpu = session(bundle / "model.onnx", "CUDAExecutionProvider")
    outs = dict(zip(meta.tasks, gpu.run(None, {meta.input.name: x[8]})))
    res["ort_cuda_vs_cpu_max_abs"] = {t: float(np.abs(outs[t] - ref[t]).max()) for t in meta.tasks}
    experts = sorted((bundle / "experts").glob("*.onnx"))
    for b in (1, 8):
        feed = {meta.input.name: x[b]}
        res[f"ort_cuda_merged_b{b}_ms"] = p50(lambda: gpu.run(None, feed))
        ex = [session(p, "CUDAExecutionProvider") for p in experts]
        res[f"ort_cuda_experts_in_turn_b{b}_ms"] = p50(lambda: [e.run(None, feed) for e in ex]) if ex else None
    res["ort_cpu_merged_b1_ms"] = p50(lambda: cpu.run(None, {meta.input.name: x[1]}), 10)

from simokit.runtime.capabilities import installed
if installed("tensorrt") and installed("cuda-python"):
    from simokit.runtime.trt.builder import build_engine
    from simokit.runtime.trt.options import BuildOptions
    ref_eng = load(bundle).infer(frames[8])  # ORT on the same frames, with pre/post-processing
    for name, opts in (("fp32", BuildOptions()), ("fp16", BuildOptions(fp16=True))):
        t0 = time.perf_counter()
        info = build_engine(bundle, opts, log=print)
        res[f"trt_{name}_build_s"] = round(time.perf_counter() - t0, 1)
        res[f"trt_{name}_pins"] = {k: v for k, v in info.extra.items() if k != "options"}
        for graph in (False, True):
            eng = load(bundle, backend="tensorrt", cuda_graph=graph)
            got = eng.infer(frames[8])
            key = f"trt_{name}{'_graph' if graph else ''}"
            res[key + "_vs_ort_max_abs"] = {t: float(np.abs(got[t] - ref_eng[t]).max()) for t in meta.tasks}
            res[key + "_b1_ms"] = p50(lambda: eng.infer(frames[1]))
            eng.close()
else:
    res["tensorrt"] = "not installed: TensorRT build and run skipped"
print(json.dumps(res, indent=1))
(out / "gpu_check.json").write_text(json.dumps(res, indent=1))
EOF

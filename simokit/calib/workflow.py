"""`simokit calib`: calibrate a bundle to INT8 and publish model.int8.onnx, the report and meta.json.

Everything is computed in a temporary directory first; every input is checked (bundle, graph input,
data, options) before anything is written, and each file then replaces its old version atomically,
meta.json last, so a failed run leaves the bundle as it was.
"""

from __future__ import annotations

import itertools
import json
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from simokit.cache import atomic_path
from simokit.calib.frames import open_frames
from simokit.calib.graph import QuantPlan, check_input, make_plan
from simokit.calib.graph_eval import drops, evaluate_graph, latencies, load_labelled
from simokit.calib.ort_quant import METHODS, preprocess, qdq_summary, quantize_qdq
from simokit.calib.readers import DEFAULT_N, CalibSet, OrtCalibReader, load_calib_set
from simokit.calib.report import Precision, markdown, plot, summary
from simokit.calib.sensitivity import SweepResult, sweep
from simokit.calib.trt_cache import CACHE_FILE
from simokit.data.arrays import SceneArrays
from simokit.errors import ConfigError
from simokit.runtime.bundle import INT8_FILE, META_FILE, MODEL_FILE, BundleMeta, read_meta
from simokit.runtime.manifest import record_files

FP16_FILE = "model.fp16.onnx"
REPORT_FILE = "calib_report.md"
PLOT_FILE = "calib_report.png"


@dataclass(frozen=True)
class CalibOptions:
    """What `simokit calib` was asked for (see its --help)."""

    data: str
    method: str = "percentile"
    n: int = DEFAULT_N
    exclude: tuple[str, ...] = ()
    keep_heads: bool = True
    sensitivity: bool = False
    budget: float = 2.0
    mean_budget: float = 1.0
    eval: str = "scenes:test"
    every: int = 10
    topic: str | None = None
    seed: int = 0
    batch: int = 8
    threads: int | None = None
    trt_cache: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"unknown calibration method '{self.method}'; choose from {', '.join(METHODS)}")
        if self.batch < 1 or self.budget < 0 or self.mean_budget < 0:
            raise ConfigError("--batch must be >= 1 and the budgets >= 0")
        if self.sensitivity and self.eval == "none":
            raise ConfigError("--sensitivity needs labelled data: give --eval scenes:test or an NYUv2 folder")


@dataclass
class CalibResult:
    """The published files, the report text and the summary recorded in meta.json."""

    bundle: Path
    files: list[Path]
    report: str
    record: dict[str, object]


def calibrate_bundle(bundle: Path, opts: CalibOptions) -> CalibResult:
    """Calibrate `bundle`'s model.onnx on `opts.data`; add model.int8.onnx, report and meta entry."""
    import onnx

    meta = read_meta(bundle)
    check_input(
        onnx.load(str(bundle / MODEL_FILE), load_external_data=False), meta.input, str(bundle / MODEL_FILE)
    )
    source = open_frames(opts.data, opts.n, opts.every, opts.progress, opts.topic)
    calib = load_calib_set(source, meta, opts.n, opts.seed, opts.progress)
    labelled = load_labelled(opts.eval, opts.progress)
    trt_builder = _trt_builder() if opts.trt_cache else None
    with tempfile.TemporaryDirectory(prefix="simokit-calib-") as tmp:
        work = Path(tmp)
        pre = work / "pre.onnx"
        how = preprocess(bundle / MODEL_FILE, pre)
        plan = make_plan(onnx.load(str(pre)), opts.exclude, opts.keep_heads)
        cache = work / "ranges.json"
        int8 = quantize_qdq(
            pre, work / INT8_FILE, plan, opts.method, cache, OrtCalibReader(calib, opts.batch)
        )
        fp32 = (
            evaluate_graph(meta, bundle / MODEL_FILE, labelled, threads=opts.threads)
            if labelled is not None
            else {}
        )
        swept = None
        if opts.sensitivity and labelled is not None:
            plan, swept = _sensitivity(meta, pre, plan, opts, cache, labelled, fp32)
            int8 = quantize_qdq(pre, work / INT8_FILE, plan, opts.method, cache)
        results = _precisions(meta, bundle, int8, labelled, fp32, opts.threads)
        files = {INT8_FILE: int8, REPORT_FILE: work / REPORT_FILE, PLOT_FILE: plot(results, work / PLOT_FILE)}
        record = _record(opts, calib, plan, how, int8, results, swept)
        report = markdown(results, opts.threads, _settings(record, calib), swept.table() if swept else "")
        files[REPORT_FILE].write_text(report)
        if trt_builder is not None:
            files[CACHE_FILE] = trt_builder(bundle, meta, calib, work / CACHE_FILE, opts.batch)
            record["calib_cache"] = CACHE_FILE
        published = [_publish(src, bundle / name) for name, src in files.items()]
        _update_meta(bundle / META_FILE, record)
        record_files(bundle, list(files))
    return CalibResult(bundle, [*published, bundle / META_FILE], report, record)


def _sensitivity(
    meta: BundleMeta,
    pre: Path,
    plan: QuantPlan,
    opts: CalibOptions,
    cache: Path,
    labelled: SceneArrays,
    fp32: dict[str, dict[str, float]],
) -> tuple[QuantPlan, SweepResult]:
    counter = itertools.count()

    def measure(candidate: QuantPlan) -> dict[str, float]:
        path = quantize_qdq(pre, pre.with_name(f"sweep{next(counter)}.onnx"), candidate, opts.method, cache)
        result = drops(evaluate_graph(meta, path, labelled, threads=opts.threads), fp32)
        path.unlink()
        return result

    return sweep(plan, measure, opts.budget, opts.mean_budget, opts.progress)


def _precisions(
    meta: BundleMeta,
    bundle: Path,
    int8: Path,
    labelled: SceneArrays | None,
    fp32: dict[str, dict[str, float]],
    threads: int | None,
) -> list[Precision]:
    graphs = {"FP32": (MODEL_FILE, bundle / MODEL_FILE)}
    if (bundle / FP16_FILE).is_file():
        graphs["FP16"] = (FP16_FILE, bundle / FP16_FILE)
    graphs["INT8"] = (INT8_FILE, int8)
    times = latencies(meta, [p for _, p in graphs.values()], threads)
    results = []
    for (name, (file, path)), ms in zip(graphs.items(), times, strict=True):
        metrics = (
            fp32
            if name == "FP32"
            else evaluate_graph(meta, path, labelled, threads=threads)
            if labelled
            else {}
        )
        results.append(Precision(name, file, ms, path.stat().st_size / 2**20, metrics))
    return results


def _record(
    opts: CalibOptions,
    calib: CalibSet,
    plan: QuantPlan,
    how: str,
    int8: Path,
    results: list[Precision],
    swept: SweepResult | None,
) -> dict[str, object]:
    import onnxruntime

    facts = qdq_summary(int8)
    return {
        "file": INT8_FILE,
        "format": "QDQ",
        "activations": "int8, symmetric (zero point 0), per tensor",
        "weights": "int8, symmetric, per output channel",
        "method": opts.method,
        "n": len(calib),
        "seed": opts.seed,
        "data": calib.to_dict(),
        "exclusions": [*opts.exclude, *(swept.excluded if swept else [])],
        "keep_head_outputs_float": opts.keep_heads,
        "quantized_nodes": len(plan.quantize),
        "float_nodes": plan.kept_float,
        "qdq": {k: facts[k] for k in ("quantize_linear", "dequantize_linear", "activation_dtypes")},
        "preprocess": how,
        "sensitivity": swept.to_dict() if swept else None,
        "report": summary(results),
        "eval": opts.eval,
        "onnxruntime": onnxruntime.__version__,
    }


def _settings(record: dict[str, object], calib: CalibSet) -> dict[str, object]:
    keys = ("method", "n", "activations", "weights", "exclusions", "quantized_nodes")
    floats = record["float_nodes"]
    reasons = (
        Counter(r.split(" (")[0].split(" of ")[0] for r in floats.values())
        if isinstance(floats, dict)
        else {}
    )
    return {
        "data": f"{calib.source} (sha256 {calib.sha256[:16]}...)",
        **{k: record[k] for k in keys},
        "weighted layers kept float": ", ".join(f"{k} x{v}" for k, v in reasons.items()) or "none",
        "never quantised": "LayerNormalization, Softmax, GELU, residual Adds, q·k and attention·v MatMuls",
        "preprocess": record["preprocess"],
        "eval": record["eval"],
    }


def _trt_builder() -> Callable[[Path, BundleMeta, CalibSet, Path, int], Path]:
    try:
        from simokit.calib.trt_calib import build_calibration_cache
    except (ImportError, AttributeError):  # a stubs-only 'tensorrt' imports as an empty namespace package
        raise ConfigError(
            "--trt-cache needs TensorRT and a GPU (pip install 'simokit[trt]', or JetPack's TensorRT)"
        ) from None
    return build_calibration_cache


def _publish(src: Path, dst: Path) -> Path:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
    return dst


def _update_meta(path: Path, record: dict[str, object]) -> None:
    raw = json.loads(path.read_text())
    raw["int8"] = record
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(raw, indent=1, default=list))

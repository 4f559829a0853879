"""ONNX Runtime static quantisation to a Q/DQ graph that ORT CPU and TensorRT both run.

Settings (the form TensorRT's explicit quantisation accepts): QuantFormat.QDQ; activations int8,
symmetric (zero point 0), one scale per tensor; weights int8, symmetric, one scale per output
channel (axis 0 for Conv, axis 1 for MatMul's (K, N) weights); bias left in float; a dedicated Q/DQ
pair per consumer; Q/DQ on the inputs of weighted layers only, not on their outputs (TensorRT's
recommended placement, and on ORT CPU it lets DQ-MatMul fuse into MatMulIntegerToFloat without a
re-quantise step). Calibration runs once and is cached as JSON, so quantising again with another
node selection (the sensitivity sweep) costs no inference.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from simokit.calib.graph import FLOAT_OPS, WEIGHTED_OPS, QuantPlan, name_nodes
from simokit.calib.readers import OrtCalibReader
from simokit.errors import ConfigError
from simokit.runtime.bundle import FRAME_SCOPE

METHODS = ("minmax", "entropy", "percentile")
_CHUNK = 16  # batches whose intermediate tensors are held in memory at once while calibrating


def method_enum(method: str) -> Any:  # ORT is untyped
    """'minmax' | 'entropy' | 'percentile' -> onnxruntime CalibrationMethod."""
    from onnxruntime.quantization import CalibrationMethod

    table = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy}
    table["percentile"] = CalibrationMethod.Percentile
    if method not in table:
        raise ConfigError(f"unknown calibration method '{method}'; choose from {', '.join(METHODS)}")
    return table[method]


def preprocess(src: Path, dst: Path) -> str:
    """ORT's quantisation pre-processing (shape inference, constant folding); returns what ran."""
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(src), str(dst), skip_symbolic_shape=False)
        how = "onnxruntime quant_pre_process"
    except Exception as exc:  # ORT's symbolic shape inference raises assorted exception types
        # it refuses some graphs that plain ONNX shape inference handles; quantisation still works
        onnx.save(onnx.shape_inference.infer_shapes(onnx.load(str(src))), str(dst))
        how = f"onnx shape inference (quant_pre_process failed: {str(exc).splitlines()[0][:120]})"
    model = onnx.load(str(dst))
    name_nodes(model)
    # ORT's optimiser lists all of its own domains; keep only those in use so TensorRT sees plain ONNX
    used = {n.domain for n in model.graph.node} | {""}
    kept = [o for o in model.opset_import if o.domain in used]
    del model.opset_import[:]
    model.opset_import.extend(kept)
    onnx.save(model, str(dst))
    return how


def qdq_options() -> dict[str, object]:
    """ORT extra_options for symmetric, per-channel, TensorRT-friendly Q/DQ."""
    return {
        "ActivationSymmetric": True,
        "WeightSymmetric": True,
        "CalibTensorRangeSymmetric": True,
        "QuantizeBias": False,
        "DedicatedQDQPair": True,
        "OpTypesToExcludeOutputQuantization": list(WEIGHTED_OPS),
        "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1},
    }


def calibrate(model: Path, reader: OrtCalibReader, method: str, cache: Path) -> Path:
    """Collect activation ranges of every weighted layer's tensors with `method`; save them to `cache`.

    Runs ORT's calibrator directly rather than inside quantize_static, which does not pass on the
    histogram size: ORT's entropy default (128 bins for 128 quantised bins) degenerates to min/max,
    so entropy uses 2048 bins like TensorRT's calibrator. Data is fed in chunks of batches, which
    bounds the intermediate tensors held in memory.
    """
    from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data

    options: dict[str, object] = {"symmetric": True}
    if method == "entropy":
        options.update(num_bins=2048, num_quantized_bins=128)
    with tempfile.TemporaryDirectory(prefix="simokit-calib-") as tmp:
        calibrator = create_calibrator(
            Path(model),
            list(WEIGHTED_OPS),
            augmented_model_path=str(Path(tmp) / "augmented.onnx"),
            calibrate_method=method_enum(method),
            extra_options=options,
        )
        # a frame graph's own tensors are never quantised, and some are all but constant (the
        # normals' squared norms, 1 +- 2e-7), which ORT's 2048-bin histograms cannot bin
        selected = getattr(calibrator, "tensors_to_calibrate", None)
        if selected is not None:
            calibrator.tensors_to_calibrate = {t for t in selected if not t.startswith(FRAME_SCOPE)}
        with contextlib.redirect_stdout(io.StringIO()):  # ORT's histogram calibrators print progress notes
            for start in range(0, len(reader), _CHUNK):
                reader.set_range(start, start + _CHUNK)
                calibrator.collect_data(reader)
            ranges = calibrator.compute_data()
    save_tensors_data(ranges, cache)
    return cache


def quantize_qdq(
    model: Path,
    out: Path,
    plan: QuantPlan,
    method: str,
    cache: Path,
    reader: OrtCalibReader | None = None,
    qoperator_uint8: bool = False,
) -> Path:
    """Quantise `plan.quantize` of the pre-processed `model` into `out`.

    Calibrates with `reader` and saves the ranges to `cache` when it does not exist yet, otherwise
    reuses them. `qoperator_uint8` writes ORT's CPU-only QOperator form with uint8 activations instead
    (for comparison; TensorRT does not run it).
    """
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    if not cache.is_file():
        if reader is None:
            raise ConfigError("quantize_qdq needs calibration data or an existing calibration cache")
        calibrate(model, reader, method, cache)
    options = qdq_options()
    fmt, act = QuantFormat.QDQ, QuantType.QInt8
    if qoperator_uint8:
        fmt, act = QuantFormat.QOperator, QuantType.QUInt8
        options.update(ActivationSymmetric=False, CalibTensorRangeSymmetric=False)
    quiet = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)  # ORT logs a pre-processing hint at WARNING per call
    try:
        quantize_static(
            str(model),
            str(out),
            None,
            quant_format=fmt,
            op_types_to_quantize=list(WEIGHTED_OPS),
            per_channel=True,
            activation_type=act,
            weight_type=QuantType.QInt8,
            nodes_to_quantize=plan.quantize,
            calibrate_method=method_enum(method),
            extra_options=options,
            calibration_cache_path=str(cache),
        )
    finally:
        logging.getLogger().setLevel(quiet)
    return out


def qdq_summary(path: Path) -> dict[str, object]:
    """Facts about a Q/DQ graph: quantised nodes, Q/DQ counts, activation dtypes and zero points."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    produced_by_dq = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    quantised = [
        n.name
        for n in model.graph.node
        if n.op_type in WEIGHTED_OPS and any(i in produced_by_dq for i in n.input)
    ]
    q_nodes = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    zero_points = [inits[n.input[2]] for n in q_nodes if len(n.input) > 2 and n.input[2] in inits]
    float_fed = [
        n.name
        for n in model.graph.node
        if n.op_type in FLOAT_OPS and not any(i in produced_by_dq for i in n.input)
    ]
    return {
        "quantized_nodes": quantised,
        "quantize_linear": len(q_nodes),
        "dequantize_linear": len(produced_by_dq),
        "activation_dtypes": sorted({str(z.dtype) for z in zero_points}),
        "max_abs_zero_point": int(max((np.abs(z.astype(np.int64)).max() for z in zero_points), default=0)),
        "float_ops": dict(Counter(n.op_type for n in model.graph.node if n.name in float_fed)),
        "domains": sorted({n.domain for n in model.graph.node} | {o.domain for o in model.opset_import}),
    }

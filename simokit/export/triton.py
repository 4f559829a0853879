"""`simokit export-triton`: a bundle as one model of a Triton Inference Server model repository.

Writes `<repo>/<name>/config.pbtxt`, `<repo>/<name>/1/model.onnx` (platform onnxruntime_onnx) or
`1/model.plan` (tensorrt_plan, the bundle's model.engine, which only runs with the TensorRT and
GPU that built it) and `<repo>/<name>/meta.json`. The config declares the graph's IO from
meta.json (checked against the ONNX graph first), dynamic batching with a preferred batch size and
a queue delay, an instance group, and meta.json itself as a parameter for triton:// clients. The
model directory is assembled beside its final name and renamed into place. Needs no torch.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simokit.cache import staged_dir
from simokit.errors import ConfigError
from simokit.runtime.bundle import MODEL_FILE, BundleError, BundleMeta, read_meta
from simokit.runtime.manifest import record_files
from simokit.runtime.onnx_session import CPU, session_for
from simokit.runtime.triton_io import (
    META_PARAMETER,
    example_shape,
    input_dims,
    input_dtype,
    meta_parameter,
    output_dims,
    triton_type,
)

# backend -> (Triton platform, file name in the version directory, instance kind)
PLATFORMS = {
    "onnxruntime": ("onnxruntime_onnx", "model.onnx", "KIND_AUTO"),
    "tensorrt": ("tensorrt_plan", "model.plan", "KIND_GPU"),
}
CONFIG_FILE = "config.pbtxt"
IO = tuple[str, list[int | str]]  # (dtype, dims) of one graph input or output


@dataclass(frozen=True)
class TritonOptions:
    """How the model is served: name (default: the bundle directory's), backend, batching, instances."""

    name: str | None = None
    backend: str = "onnxruntime"
    max_batch: int = 8
    instances: int = 2
    queue_delay_us: int = 500

    def validate(self) -> None:
        """Refuse values Triton would reject, naming the flag."""
        if self.backend not in PLATFORMS:
            raise ConfigError(f"--backend '{self.backend}': choose from {', '.join(PLATFORMS)}")
        if self.max_batch < 1 or self.instances < 1 or self.queue_delay_us < 0:
            raise ConfigError("--max-batch and --instances must be >= 1 and --queue-delay-us >= 0")
        if self.name is not None and (not self.name or self.name.startswith(".") or "/" in self.name):
            raise ConfigError(f"--name '{self.name}': use letters, digits, '-', '_' or '.', no '/'")


def model_config(meta: BundleMeta, name: str, opts: TritonOptions) -> str:
    """config.pbtxt text (protobuf text format of Triton's ModelConfig) for `meta`."""
    platform, _, kind = PLATFORMS[opts.backend]
    layout = "FORMAT_NHWC" if meta.input.kind == "uint8" else "FORMAT_NCHW"
    outputs = output_dims(meta)
    lines = [
        f'name: "{name}"',
        f'platform: "{platform}"',
        f"max_batch_size: {opts.max_batch}",
        "input [",
        _tensor(meta.input.name, triton_type(input_dtype(meta)), input_dims(meta), f"format: {layout}"),
        "]",
        "output [",
        ",\n".join(_tensor(t, triton_type(meta.outputs[t]["dtype"]), d) for t, d in outputs.items()),
        "]",
        "dynamic_batching {",
        f"  preferred_batch_size: [ {opts.max_batch} ]",
        f"  max_queue_delay_microseconds: {opts.queue_delay_us}",
        "}",
        f"instance_group [ {{ count: {opts.instances} kind: {kind} }} ]",
        "parameters {",
        f'  key: "{META_PARAMETER}"',
        f"  value: {{ string_value: {_quote(meta_parameter(meta))} }}",
        "}",
    ]
    return "\n".join(lines) + "\n"


def export_triton(bundle: str | Path, repo: str | Path, opts: TritonOptions) -> Path:
    """Write `<repo>/<name>/` for the bundle (replacing an older one atomically); return its path."""
    opts.validate()
    root = Path(bundle)
    meta = read_meta(root)
    _check_graph(root / MODEL_FILE, meta)
    name = opts.name or root.resolve().name
    source = _model_source(root, opts)
    final = Path(repo) / name
    with staged_dir(final) as tmp:
        (tmp / "1").mkdir()
        shutil.copyfile(source, tmp / "1" / PLATFORMS[opts.backend][1])
        shutil.copyfile(root / "meta.json", tmp / "meta.json")
        (tmp / CONFIG_FILE).write_text(model_config(meta, name, opts))
        record_files(tmp)  # the repository's own files, not the bundle's
    return final


def _tensor(name: str, dtype: str, dims: list[int], extra: str = "") -> str:
    dims_text = ", ".join(str(d) for d in dims)
    return f'  {{ name: "{name}" data_type: {dtype} {extra + " " if extra else ""}dims: [ {dims_text} ] }}'


def _quote(text: str) -> str:
    # Text-format string literal; meta_parameter() is ASCII JSON, so only \ and " need escaping.
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _model_source(root: Path, opts: TritonOptions) -> Path:
    if opts.backend == "onnxruntime":
        return root / MODEL_FILE
    from simokit.runtime.trt import ENGINE_FILE
    from simokit.runtime.trt.sidecar import read_sidecar

    info = read_sidecar(root)
    max_batch = min((int(p["max"][0]) for p in info.profiles), default=0)
    n = opts.max_batch
    if max_batch < n:
        raise ConfigError(
            f"{root / ENGINE_FILE} takes batches up to {max_batch}, not --max-batch {opts.max_batch}; "
            f"lower --max-batch or rebuild: simokit build-engine {root} --batch 1,{n},{n}"
        )
    return root / ENGINE_FILE


def graph_io(path: Path, probe: np.ndarray | None = None) -> tuple[dict[str, IO], dict[str, IO]]:
    """An ONNX graph's ({input: (dtype, dims)}, {output: (dtype, dims)}), batch axis included.

    Declared dims may be symbolic (names); with `probe` (a batch for the single input), output
    dims are the shapes one run on it produces instead.
    """
    names = {"tensor(uint8)": "uint8", "tensor(float)": "float32", "tensor(float16)": "float16"}
    names |= {"tensor(int32)": "int32", "tensor(int64)": "int64"}
    sess = session_for(path, providers=CPU)  # ONNX Runtime reads IO without needing the onnx package
    try:
        ran = sess.run(None, {sess.get_inputs()[0].name: probe}) if probe is not None else None
    except Exception as exc:  # ORT raises private exception types for unreadable graphs or bad feeds
        raise BundleError(f"{path}: ONNX Runtime cannot run it ({str(exc).splitlines()[0]})") from None

    def io(args: Sequence[Any], shapes: list[Any] | None = None) -> dict[str, IO]:
        dims = [list(s.shape) for s in shapes] if shapes is not None else [list(a.shape) for a in args]
        return {a.name: (names.get(a.type, a.type), d) for a, d in zip(args, dims, strict=True)}

    return io(sess.get_inputs()), io(sess.get_outputs(), ran)


def _check_graph(path: Path, meta: BundleMeta) -> None:
    # Outputs are checked on a real run: exporters often leave their dims symbolic.
    probe = np.zeros(example_shape(meta), input_dtype(meta))
    inputs, outputs = graph_io(path, probe)
    h, w = meta.input.height, meta.input.width
    want_in = {meta.input.name: (input_dtype(meta), input_dims(meta))}
    want_out = {t: (meta.outputs[t]["dtype"], _resolve(d, h, w)) for t, d in output_dims(meta).items()}
    for what, graph, want in (("input", inputs, want_in), ("output", outputs, want_out)):
        if list(graph) != list(want):
            raise BundleError(f"{path}: graph {what}s {list(graph)} differ from meta.json's {list(want)}")
        for name, (dtype, dims) in want.items():
            g_dtype, g_dims = graph[name]
            pairs = zip(g_dims[1:], dims, strict=False)
            same = [g == d or (d == -1 and not isinstance(g, int)) for g, d in pairs]
            if g_dtype != dtype or len(g_dims) != len(dims) + 1 or not all(same):
                raise BundleError(
                    f"{path}: {what} '{name}' is {g_dtype} {g_dims} in the graph but meta.json says "
                    f"{dtype} [B, {', '.join(map(str, dims))}]; rebuild the bundle"
                )


def _resolve(dims: list[int], h: int, w: int) -> list[int]:
    # Free spatial dims (-1) are the last two; a probe at the default size fills them with h, w.
    return [*dims[:-2], h if dims[-2] == -1 else dims[-2], w if dims[-1] == -1 else dims[-1]]

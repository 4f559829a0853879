"""TensorRT backend: what is checkable without a GPU runs here; engine build and run need TensorRT.

Profiles, the FP32 plan on a real exported graph, the sidecar and its mismatch errors, the CUDA
wrapper's error handling (against a fake runtime), lazy imports and the CLI's one-line errors.
"""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from onnx import helper
from tiny_models import tiny_model

from simokit.cli import main
from simokit.errors import ConfigError, ShapeError
from simokit.export.bundle import write_bundle
from simokit.export.onnx import ExportSpec
from simokit.runtime import load
from simokit.runtime.backends.ort import TRT_CACHE_DIR, trt_provider_options
from simokit.runtime.bundle import BundleError, read_meta
from simokit.runtime.capabilities import BACKENDS, installed, require
from simokit.runtime.trt import ENGINE_FILE, SIDECAR_FILE, cuda
from simokit.runtime.trt.options import BuildOptions
from simokit.runtime.trt.precision import has_qdq, onnx_node_of, plan_fp32
from simokit.runtime.trt.profiles import Range, profile_for
from simokit.runtime.trt.runner import numpy_dtype
from simokit.runtime.trt.sidecar import (
    EngineInfo,
    check_engine,
    check_precision,
    file_sha256,
    read_sidecar,
    write_sidecar,
)

TASKS = ("seg", "depth", "normal")
GPU = Path("/dev/nvidia0").exists() or Path("/dev/nvhost-ctrl-gpu").exists()  # desktop / Jetson
TRT_INSTALLED = installed("tensorrt") and installed("cuda-python")
HAVE_TRT = TRT_INSTALLED and GPU
needs_trt = pytest.mark.skipif(not HAVE_TRT, reason="needs TensorRT, cuda-python and a CUDA GPU (none here)")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = tiny_model(seed=3)
    frames = np.random.default_rng(0).integers(0, 256, size=(2, 56, 56, 3), dtype=np.uint8)
    out = tmp_path_factory.mktemp("trt") / "bundle"
    return write_bundle(out, model, ExportSpec(TASKS, 56, 56, input_kind="uint8"), frames)


# --- optimisation profiles -------------------------------------------------------------------


def test_ranges_parse_and_validate() -> None:
    assert Range.parse("1,4,8") == Range(1, 4, 8)
    assert Range.parse("4") == Range(4, 4, 4)
    for bad in ("2,1,8", "0,1,2", "1,2", "a,b,c"):
        with pytest.raises(ConfigError):
            Range.parse(bad)


def test_profile_for_dynamic_batch_and_fixed_size() -> None:
    prof = profile_for("image", [-1, 56, 56, 3], "uint8")
    assert (prof.min, prof.opt, prof.max) == ((1, 56, 56, 3), (1, 56, 56, 3), (8, 56, 56, 3))
    prof = profile_for("image", ["batch", 3, 224, 224], "float", batch=Range(2, 4, 16))
    assert (prof.min, prof.opt, prof.max) == ((2, 3, 224, 224), (4, 3, 224, 224), (16, 3, 224, 224))
    assert prof.contains((5, 3, 224, 224)) and not prof.contains((17, 3, 224, 224))
    assert not prof.fixed and profile_for("x", [1, 3, 14, 14], "float").fixed
    with pytest.raises(ConfigError, match="fixed batch of 1"):
        profile_for("x", [1, 3, 14, 14], "float", batch=Range(1, 1, 8))
    with pytest.raises(ShapeError, match="4 axes"):
        profile_for("x", [-1, 3, 14], "float")


def test_profile_for_dynamic_height_width() -> None:
    h, w = Range(224, 448, 448), Range(224, 224, 448)
    prof = profile_for("image", [None, "h", "w", 3], "uint8", height=h, width=w)
    assert prof.min == (1, 224, 224, 3) and prof.opt == (1, 448, 224, 3) and prof.max == (8, 448, 448, 3)
    prof = profile_for("image", [-1, 3, -1, -1], "float", height=h, width=w)
    assert prof.max == (8, 3, 448, 448)
    with pytest.raises(ConfigError, match="dynamic height"):
        profile_for("image", [-1, 3, -1, -1], "float", width=w)
    with pytest.raises(ConfigError, match="multiples of 14"):
        profile_for("image", [-1, 3, -1, -1], "float", height=Range(200, 224, 224), width=w)
    with pytest.raises(ShapeError, match="axis 3 is dynamic"):
        profile_for("image", [-1, 56, 56, -1], "uint8")


# --- FP32 plan on the exported graph ----------------------------------------------------------


def test_fp32_plan_on_exported_graph(bundle: Path) -> None:
    model = onnx.load(str(bundle / "model.onnx"))
    ops = {n.name: n.op_type for n in model.graph.node}
    plan = plan_fp32(model, late_blocks=1)
    assert (plan.layernorms, plan.softmaxes, plan.blocks) == (5, 2, 2)  # vitnano14: 2 blocks + final norm
    assert sorted(ops[n] for n in plan.nodes) == ["Add"] * 2 + ["LayerNormalization"] * 5 + ["Softmax"] * 2
    assert all("blocks.1/" in name for name in plan.residual_adds)  # the last block only
    norm_inputs = {n.input[0] for n in model.graph.node if n.op_type in ("LayerNormalization", "Softmax")}
    assert plan.tensors == norm_inputs
    assert len(plan_fp32(model, late_blocks=2).residual_adds) == 4
    assert plan_fp32(model, late_blocks=0).residual_adds == ()
    assert not has_qdq(model)


def test_fp32_plan_without_block_names_counts_by_position(bundle: Path) -> None:
    model = onnx.load(str(bundle / "model.onnx"))
    named = plan_fp32(model, late_blocks=1).residual_adds
    positions = [i for i, n in enumerate(model.graph.node) if n.name in named]
    for i, node in enumerate(model.graph.node):
        node.name = f"n{i}"
    renamed = plan_fp32(model, late_blocks=1).residual_adds
    assert renamed == tuple(f"n{i}" for i in positions) and len(renamed) == 2  # the same two Adds


def _decompose_layernorms(model: onnx.ModelProto) -> onnx.ModelProto:
    """Replace each LayerNormalization by the ReduceMean/Sub/Pow/.../Add chain of older exports."""
    graph = model.graph
    eps = helper.make_tensor("ln_eps", onnx.TensorProto.FLOAT, [], [1e-6])
    two = helper.make_tensor("ln_two", onnx.TensorProto.FLOAT, [], [2.0])
    graph.initializer.extend([eps, two])
    nodes = []
    for node in graph.node:
        if node.op_type != "LayerNormalization":
            nodes.append(node)
            continue
        x, scale, bias = node.input
        p = node.name
        nodes += [
            helper.make_node("ReduceMean", [x], [f"{p}/mean"], name=f"{p}/m", axes=[-1]),
            helper.make_node("Sub", [x, f"{p}/mean"], [f"{p}/d"], name=f"{p}/sub"),
            helper.make_node("Pow", [f"{p}/d", "ln_two"], [f"{p}/sq"], name=f"{p}/pow"),
            helper.make_node("ReduceMean", [f"{p}/sq"], [f"{p}/var"], name=f"{p}/v", axes=[-1]),
            helper.make_node("Add", [f"{p}/var", "ln_eps"], [f"{p}/ve"], name=f"{p}/eps"),
            helper.make_node("Sqrt", [f"{p}/ve"], [f"{p}/std"], name=f"{p}/sqrt"),
            helper.make_node("Div", [f"{p}/d", f"{p}/std"], [f"{p}/n"], name=f"{p}/div"),
            helper.make_node("Mul", [f"{p}/n", scale], [f"{p}/s"], name=f"{p}/mul"),
            helper.make_node("Add", [f"{p}/s", bias], [node.output[0]], name=f"{p}/shift"),
        ]
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def test_fp32_plan_finds_decomposed_layernorms(bundle: Path, tmp_path: Path) -> None:
    import onnxruntime as ort

    fused = onnx.load(str(bundle / "model.onnx"))
    decomposed = _decompose_layernorms(onnx.load(str(bundle / "model.onnx")))
    onnx.checker.check_model(decomposed)
    onnx.save(decomposed, str(tmp_path / "d.onnx"))
    x = np.random.default_rng(1).integers(0, 256, size=(1, 56, 56, 3), dtype=np.uint8)
    a = ort.InferenceSession(str(bundle / "model.onnx")).run(["depth"], {"image": x})[0]
    b = ort.InferenceSession(str(tmp_path / "d.onnx")).run(["depth"], {"image": x})[0]
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)  # the decomposition is a faithful LayerNorm

    plan, ref = plan_fp32(decomposed, late_blocks=1), plan_fp32(fused, late_blocks=1)
    assert plan.layernorms == 5 and plan.softmaxes == 2
    assert plan.residual_adds == ref.residual_adds
    ln_nodes = {n for n in plan.nodes if "/LayerNormalization/" in n}
    assert len(ln_nodes) == 5 * 9  # every node of each chain, eps Add and affine tail included
    assert plan.tensors == ref.tensors


def test_onnx_node_of_maps_tensorrt_layer_names() -> None:
    known = {"/b.0/attn/Softmax", "/b.0/Add", "/b.0/Add_1", "/b.0/norm1/LayerNormalization"}
    meta = "[ONNX Layer: /b.0/norm1/LayerNormalization | Local Function: ln]"
    assert onnx_node_of("whatever", meta, known) == "/b.0/norm1/LayerNormalization"
    assert onnx_node_of("/b.0/attn/Softmax_7", "", known) == "/b.0/attn/Softmax"
    assert onnx_node_of("/b.0/Add_1", "", known) == "/b.0/Add_1"  # a real node, not Add + suffix
    assert onnx_node_of("/b.0/Add_1_12", "", known) == "/b.0/Add_1"
    assert onnx_node_of("/b.0/MatMul_3", "[ONNX Layer: /b.0/MatMul]", known) is None


class _Layer:
    """A stand-in TensorRT layer: name, metadata, float or int outputs, recorded precision calls."""

    def __init__(self, name: str, metadata: str, outputs: list[str], dtype: str) -> None:
        self.name, self.metadata, self.precision = name, metadata, None
        self.outs = [SimpleNamespace(name=o, dtype=dtype) for o in outputs]
        self.num_outputs = len(outputs)
        self.types: dict[int, str] = {}

    def get_output(self, j: int) -> SimpleNamespace:
        return self.outs[j]

    def set_output_type(self, j: int, dtype: str) -> None:
        self.types[j] = dtype


def test_apply_plan_pins_the_layers_the_parser_makes(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from simokit.runtime.trt.config import apply_plan

    fake = SimpleNamespace(DataType=SimpleNamespace(FLOAT="f32", HALF="f16"), float32="f32")
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    model = onnx.load(str(bundle / "model.onnx"))
    plan = plan_fp32(model, late_blocks=1)
    layers = [
        _Layer(n.name, f"[ONNX Layer: {n.name}]", list(n.output), "i64" if n.op_type == "Shape" else "f32")
        for n in model.graph.node
    ]
    softmax = next(n for n in plan.nodes if n.endswith("Softmax"))
    layers.append(_Layer(f"{softmax}_9", "", ["helper_out"], "f32"))  # a second layer, no metadata
    network = SimpleNamespace(num_layers=len(layers), get_layer=layers.__getitem__)
    logs: list[str] = []
    counts = apply_plan(network, plan, frozenset(n.name for n in model.graph.node), logs.append)
    pinned = {layer.name for layer in layers if layer.precision == "f32"}
    assert pinned == set(plan.nodes) | {f"{softmax}_9"}
    assert all(layer.types == {0: "f32"} for layer in layers if layer.name in pinned)
    producers = {layer.name for layer in layers if layer.types and layer.name not in pinned}
    feeding = {n.name for n in model.graph.node if set(n.output) & plan.tensors} - set(plan.nodes)
    assert producers == feeding and len(feeding) >= 3  # pos-embed Add, QK MatMuls, early residual Adds
    assert counts == {"pinned_layers": len(plan.nodes) + 1, "fp32_output_layers": len(feeding)}
    assert "FP32 in" in logs[-1]


def test_has_qdq() -> None:
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s"], ["q"]),
        helper.make_node("DequantizeLinear", ["q", "s"], ["y"]),
    ]
    io = [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [1]) for n in ("x", "y")]
    scale = helper.make_tensor("s", onnx.TensorProto.FLOAT, [], [0.1])
    assert has_qdq(helper.make_model(helper.make_graph(nodes, "g", io[:1], io[1:], [scale])))


# --- sidecar ----------------------------------------------------------------------------------


def _fake_engine(root: Path, precision: str = "fp16", dla: int | None = None) -> EngineInfo:
    (root / ENGINE_FILE).write_bytes(b"plan bytes")
    info = EngineInfo(
        tensorrt="10.3.0",
        gpu="Orin",
        compute_capability="8.7",
        precision=precision,
        profiles=[profile_for("image", [-1, 56, 56, 3], "uint8").to_dict()],
        onnx_file="model.onnx",
        onnx_sha256=file_sha256(root / "model.onnx"),
        engine_sha256=file_sha256(root / ENGINE_FILE),
        dla_core=dla,
        extra={"pinned_layers": 9},
    )
    write_sidecar(root, info)
    return info


@pytest.fixture()
def copy(bundle: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(bundle, tmp_path / "b"))  # whole: meta.json lists every file


def test_sidecar_round_trip(copy: Path) -> None:
    info = _fake_engine(copy, dla=0)
    assert read_sidecar(copy) == info
    assert json.loads((copy / SIDECAR_FILE).read_text())["profiles"][0]["max"] == [8, 56, 56, 3]
    check_engine(copy, info, "10.3.0", "Orin", "8.7")  # same everything: accepted
    assert info.rebuild_hint(copy) == f"simokit build-engine {copy} --fp16 --dla 0"


def test_sidecar_mismatches_say_what_and_how_to_rebuild(copy: Path) -> None:
    info = _fake_engine(copy)
    with pytest.raises(BundleError, match=r"TensorRT 10\.3\.0, this is 10\.7\.0.*build-engine .* --fp16"):
        check_engine(copy, info, "10.7.0", "Orin", "8.7")
    with pytest.raises(BundleError, match=r"built for Orin \(compute 8\.7\), this is NVIDIA H100.*rebuild"):
        check_engine(copy, info, "10.3.0", "NVIDIA H100", "9.0")
    (copy / ENGINE_FILE).write_bytes(b"other plan")
    with pytest.raises(BundleError, match=r"does not match its model\.engine\.json"):
        check_engine(copy, info, "10.3.0", "Orin", "8.7")
    check_engine(copy, info, "10.3.0", "Orin", "8.7", hashes=False)
    (copy / "model.onnx").write_bytes(b"changed")
    with pytest.raises(BundleError, match=r"older model\.onnx"):
        check_engine(copy, info, "10.3.0", "Orin", "8.7")


def test_sidecar_missing_or_malformed(copy: Path) -> None:
    with pytest.raises(BundleError, match=r"no model\.engine; build it on this device"):
        read_sidecar(copy)
    _fake_engine(copy)
    (copy / SIDECAR_FILE).write_text("{not json")
    with pytest.raises(BundleError, match="malformed"):
        read_sidecar(copy)
    (copy / SIDECAR_FILE).unlink()
    with pytest.raises(BundleError, match=r"has no model\.engine\.json"):
        read_sidecar(copy)


def test_precision_requests_must_match_the_engine() -> None:
    check_precision(None, "fp16")
    check_precision("int8", "int8+fp16")
    with pytest.raises(ConfigError, match="built as fp16, not int8"):
        check_precision("int8", "fp16")


# --- options, CUDA wrapper, dtypes ------------------------------------------------------------


def test_build_options_are_validated_before_tensorrt(tmp_path: Path) -> None:
    assert BuildOptions().precision == "fp32" and BuildOptions(int8=True, fp16=True).precision == "int8+fp16"
    with pytest.raises(ConfigError, match="add --int8"):
        BuildOptions(calib_cache=tmp_path)
    with pytest.raises(ConfigError, match="not found"):
        BuildOptions(int8=True, calib_cache=tmp_path / "missing.cache")
    with pytest.raises(ConfigError, match="DLA runs FP16 or INT8"):
        BuildOptions(dla_core=0)
    with pytest.raises(ConfigError, match=r"0\.\.5"):
        BuildOptions(opt_level=7)
    with pytest.raises(ConfigError, match="strongly typed"):
        BuildOptions(strongly_typed=True, fp16=True)


def test_numpy_dtypes_of_engine_tensors() -> None:
    assert numpy_dtype("HALF") == np.float16 and numpy_dtype("UINT8") == np.uint8
    with pytest.raises(BundleError, match="BF16"):
        numpy_dtype("BF16")


@pytest.fixture()
def fake_cudart(monkeypatch: pytest.MonkeyPatch) -> list[ctypes.Array[ctypes.c_char]]:
    """A stand-in for cuda.bindings.runtime: host 'pinned' memory is ctypes memory, 2 = an error."""
    keep: list[ctypes.Array[ctypes.c_char]] = []

    def malloc_host(n: int) -> tuple[int, int]:
        keep.append(ctypes.create_string_buffer(n))
        return 0, ctypes.addressof(keep[-1])

    props = SimpleNamespace(name=b"Orin\0\0garbage", major=8, minor=7)
    fake = SimpleNamespace(
        cudaError_t=SimpleNamespace(cudaSuccess=0),
        cudaGetErrorName=lambda err: (0, b"cudaErrorMemoryAllocation"),
        cudaSetDevice=lambda d: (0,),
        cudaGetDeviceProperties=lambda d: (0, props),
        cudaMallocHost=malloc_host,
        cudaMalloc=lambda n: (2, 0),
    )
    monkeypatch.setattr(cuda, "_runtime", lambda: fake)
    return keep


def test_cuda_wrapper_unpacks_results_and_names_errors(fake_cudart: list[ctypes.Array]) -> None:
    assert cuda.device_info() == ("Orin", "8.7")
    host, address = cuda.host_alloc((2, 3), np.dtype(np.float32))
    host[:] = 2.5
    assert address == ctypes.addressof(fake_cudart[0])
    assert np.frombuffer(fake_cudart[0].raw, np.float32).tolist() == [2.5] * 6  # the array is that memory
    with pytest.raises(cuda.CudaError, match="cudaMalloc failed: cudaErrorMemoryAllocation"):
        cuda.malloc(64)


# --- ORT TensorRT route, capability table, lazy imports, CLI ------------------------------------


def test_ort_tensorrt_options_keep_the_cache_in_the_bundle(copy: Path) -> None:
    opts = trt_provider_options(copy, read_meta(copy), fp16=True)
    assert opts["trt_engine_cache_path"] == str(copy / TRT_CACHE_DIR) and (copy / TRT_CACHE_DIR).is_dir()
    assert opts["trt_fp16_enable"] == "True" and opts["trt_layer_norm_fp32_fallback"] == "True"
    assert opts["trt_profile_min_shapes"] == "image:1x56x56x3"
    assert opts["trt_profile_max_shapes"] == "image:8x56x56x3"


@pytest.mark.skipif(TRT_INSTALLED, reason="TensorRT is installed here")
def test_missing_tensorrt_is_one_clear_error(bundle: Path) -> None:
    assert set(BACKENDS) == {"onnxruntime", "ort-tensorrt", "tensorrt", "torch"}
    assert "int8" in BACKENDS["tensorrt"].precisions and "int8" not in BACKENDS["onnxruntime"].precisions
    with pytest.raises(ConfigError, match="needs tensorrt"):
        require("tensorrt")
    with pytest.raises(ConfigError, match="needs tensorrt"):
        load(bundle, backend="tensorrt")
    with pytest.raises(ConfigError, match="runs fp32, fp16, int8-qdq, not 'int8'"):
        load(bundle, backend="onnxruntime", precision="int8")
    with pytest.raises(
        BundleError, match=r"no model.fp16.onnx for precision 'fp16'; add it with simokit build --fp16"
    ):
        load(bundle, backend="onnxruntime", precision="fp16")


def test_ort_tensorrt_without_the_provider_is_a_bundle_error(bundle: Path) -> None:
    import onnxruntime as ort

    if "TensorrtExecutionProvider" in ort.get_available_providers():
        pytest.skip("this ONNX Runtime has the TensorRT provider")
    with pytest.raises(BundleError, match="no TensorrtExecutionProvider"):
        load(bundle, backend="ort-tensorrt")


def test_importing_the_runtime_imports_no_tensorrt_or_cuda() -> None:
    code = (
        "import sys\n"
        "import simokit, simokit.runtime, simokit.runtime.engine, simokit.runtime.capabilities\n"
        "import simokit.runtime.trt.profiles, simokit.runtime.trt.precision, simokit.runtime.trt.sidecar\n"
        "import simokit.runtime.trt.engine_build, simokit.runtime.trt.runner, simokit.runtime.backends.ort\n"
        "bad = ('tensorrt', 'tensorrt_bindings', 'cuda', 'pycuda', 'torch')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in bad))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


@pytest.mark.skipif(TRT_INSTALLED, reason="TensorRT is installed here")
def test_cli_without_tensorrt_exits_2_with_one_line(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = sorted(p.name for p in bundle.iterdir())
    assert main(["build-engine", str(bundle), "--fp16"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("simokit build-engine: error:") and "needs tensorrt" in err[0]
    assert sorted(p.name for p in bundle.iterdir()) == before  # no engine, no sidecar, no temp file
    out = tmp_path / "new"
    assert main(["build", "--out", str(out), "--backend", "tensorrt", "-q"]) == 2
    assert "needs tensorrt" in capsys.readouterr().err and not out.exists()
    assert main(["build-engine", str(bundle), "--calib-cache", str(bundle / "meta.json")]) == 2
    assert "add --int8" in capsys.readouterr().err


# --- needs TensorRT and a GPU -----------------------------------------------------------------


@needs_trt
def test_engine_matches_onnxruntime(copy: Path) -> None:
    from simokit.runtime.trt.engine_build import build_engine

    frames = np.random.default_rng(5).integers(0, 256, size=(3, 56, 56, 3), dtype=np.uint8)
    ref = load(copy).infer(frames)
    info = build_engine(copy, BuildOptions(batch=Range(1, 2, 4)))
    assert info.precision == "fp32" and read_sidecar(copy) == info
    for graph in (False, True):
        engine = load(copy, backend="tensorrt", cuda_graph=graph)
        out = engine.infer(frames)
        for task in TASKS:
            np.testing.assert_allclose(out[task], ref[task], rtol=1e-3, atol=2e-3)
        with pytest.raises(ShapeError, match="outside the engine's profile"):
            engine.infer(np.zeros((5, 56, 56, 3), np.uint8))
        engine.close()


@needs_trt
def test_fp16_engine_keeps_layernorm_fp32_and_stays_close(copy: Path) -> None:
    from simokit.runtime.trt.engine_build import build_engine

    frames = np.random.default_rng(6).integers(0, 256, size=(2, 56, 56, 3), dtype=np.uint8)
    ref = load(copy).infer(frames)
    info = build_engine(copy, BuildOptions(fp16=True))
    assert info.extra["pinned_layers"] > 0
    out = load(copy, backend="tensorrt", precision="fp16").infer(frames)
    np.testing.assert_allclose(out["depth"], ref["depth"], rtol=0.05, atol=0.05)

"""Triton: export-triton config vs the ONNX graph, triton:// URLs, serve's environment, a round trip."""

from __future__ import annotations

import json
import shutil
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

from simokit.cli import main
from simokit.errors import ConfigError
from simokit.export.triton import TritonOptions, export_triton
from simokit.runtime import load
from simokit.runtime.backends.triton import TritonError, is_triton_url, parse_url
from simokit.runtime.bundle import BundleError, read_meta
from simokit.runtime.serve_env import check_numpy, libpython_dir, server_library_path
from simokit.runtime.triton_io import META_PARAMETER, meta_from_config

TASKS = ("seg", "depth", "normal")
ONNX_TO_TRITON = {2: "TYPE_UINT8", 1: "TYPE_FP32", 6: "TYPE_INT32", 10: "TYPE_FP16"}


@pytest.fixture(scope="module", params=["uint8", "float-dynamic"])
def bundle(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """56x56 vitnano14 bundles: uint8 NHWC input with seg labels, and float NCHW input of any size."""

    from tiny_models import tiny_model

    from simokit.export.bundle import write_bundle
    from simokit.export.onnx import ExportSpec

    model = tiny_model(seed=0, classes=5, seg_batch_norm=False)
    if request.param == "uint8":
        spec = ExportSpec(TASKS, 56, 56, input_kind="uint8", seg_output="labels")
    else:
        spec = ExportSpec(TASKS, 56, 56, input_kind="float", dynamic_hw=True)
    images = np.random.default_rng(0).integers(0, 256, size=(1, 56, 56, 3), dtype=np.uint8)
    out = tmp_path_factory.mktemp(request.param) / "tiny"
    return write_bundle(out, model, spec, images, classes=tuple("abcde"), palette=np.zeros((5, 3)))


def _parse_config(path: Path):  # type: ignore[no-untyped-def]  # protobuf message
    from serve_helpers import require_module

    text_format = require_module("google.protobuf.text_format")
    pb = require_module("tritonclient.grpc.model_config_pb2")
    return text_format.Parse(path.read_text(), pb.ModelConfig()), pb


def test_config_parses_and_matches_the_onnx_graph(bundle: Path, tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort

    opts = TritonOptions(max_batch=8, instances=2, queue_delay_us=250)
    out = export_triton(bundle, tmp_path / "repo", opts)
    config, pb = _parse_config(out / "config.pbtxt")
    graph = onnx.load(str(bundle / "model.onnx")).graph
    assert (config.name, config.platform, config.max_batch_size) == ("tiny", "onnxruntime_onnx", 8)
    declared = list(config.input) + list(config.output)
    assert [t.name for t in declared] == [v.name for v in [*graph.input, *graph.output]]
    for t, v in zip(declared, [*graph.input, *graph.output], strict=True):
        assert pb.DataType.Name(t.data_type) == ONNX_TO_TRITON[v.type.tensor_type.elem_type]
        graph_dims = [d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim]
        assert len(t.dims) == len(graph_dims) - 1  # Triton's dims leave out the batch axis
        assert all(g in (-1, c) for g, c in zip(graph_dims[1:], t.dims, strict=True)), (t.name, graph_dims)
    # Symbolic graph dims hide nothing: the graph's real output shapes are the declared ones.
    h, w = (70, 42) if -1 in config.input[0].dims else (56, 56)
    feed_shape = [3, h, w] if config.input[0].data_type == pb.TYPE_FP32 else [h, w, 3]
    x = np.zeros([2, *feed_shape], np.float32 if config.input[0].data_type == pb.TYPE_FP32 else np.uint8)
    outs = ort.InferenceSession(str(out / "1" / "model.onnx")).run(None, {config.input[0].name: x})
    for o, y in zip(config.output, outs, strict=True):
        dims = list(o.dims)
        if -1 in dims:
            dims[-2:] = [h, w]
        assert y.shape == (2, *dims), o.name
    assert list(config.dynamic_batching.preferred_batch_size) == [8]
    assert config.dynamic_batching.max_queue_delay_microseconds == 250
    groups = [(g.count, pb.ModelInstanceGroup.Kind.Name(g.kind)) for g in config.instance_group]
    assert groups == [(2, "KIND_AUTO")]
    assert (out / "1" / "model.onnx").read_bytes() == (bundle / "model.onnx").read_bytes()
    repo_meta, bundle_meta = (json.loads((d / "meta.json").read_text()) for d in (out, bundle))
    assert sorted(repo_meta.pop("files")) == ["1/model.onnx", "config.pbtxt"]  # its own, not the bundle's
    bundle_meta.pop("files")
    assert repo_meta == bundle_meta
    param = {META_PARAMETER: {"string_value": config.parameters[META_PARAMETER].string_value}}
    assert meta_from_config({"parameters": param}, "config") == read_meta(bundle)


def test_export_replaces_atomically_and_refuses_bad_input(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    assert main(["export-triton", str(bundle), "--repo", str(repo), "--name", "m", "--max-batch", "4"]) == 0
    assert main(["export-triton", str(bundle), "--repo", str(repo), "--name", "m", "--max-batch", "2"]) == 0
    assert "model: " in capsys.readouterr().out
    assert sorted(p.name for p in repo.iterdir()) == ["m"]  # no temporary or old directories left
    assert "max_batch_size: 2\n" in (repo / "m" / "config.pbtxt").read_text()
    with pytest.raises(ConfigError, match="--max-batch"):
        export_triton(bundle, repo, TritonOptions(max_batch=0))
    with pytest.raises(BundleError, match=r"model\.engine"):
        export_triton(bundle, repo, TritonOptions(backend="tensorrt"))
    broken = tmp_path / "broken"
    shutil.copytree(bundle, broken)
    meta = json.loads((broken / "meta.json").read_text())
    meta["outputs"]["depth"]["shape"][1] = 2
    (broken / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="output 'depth'"):
        export_triton(broken, repo, TritonOptions())
    assert main(["export-triton", str(broken), "--repo", str(repo)]) == 2


@pytest.mark.parametrize(
    ("url", "want"),
    [
        ("triton://gpu-box:9000/merged", ("http", "gpu-box", 9000, "merged", "")),
        ("triton://10.0.0.5/merged/3", ("http", "10.0.0.5", 8000, "merged", "3")),
        ("triton+grpc://gpu-box/merged", ("grpc", "gpu-box", 8001, "merged", "")),
        ("triton+http://h:1/m", ("http", "h", 1, "m", "")),
        (str(Path("triton://h:8000/m")), ("http", "h", 8000, "m", "")),  # pathlib eats one '/'
    ],
)
def test_triton_urls_parse(url: str, want: tuple[object, ...]) -> None:
    u = parse_url(url)
    assert (u.protocol, u.host, u.port, u.model, u.version) == want


@pytest.mark.parametrize(
    "url",
    [
        "triton://host",
        "triton://host:port/m",
        "triton://h/m/v1",
        "triton://h/a/1/b",
        "triton://h/m?x=1",
        "http://h/m",
    ],
)
def test_bad_triton_urls_are_named_errors(url: str) -> None:
    with pytest.raises(ConfigError, match=r"(?i)triton"):
        parse_url(url)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("triton://h:8000/m", True),
        ("triton+grpc://h/m", True),
        ("triton+http://h/m", True),
        (Path("triton://h:8000/m"), True),  # pathlib eats one '/'
        ("tritonbundle", False),  # a bundle directory whose name starts with 'triton'
        ("triton_out/bundle", False),
        ("http://h/m", False),
        ("bundles/triton://x", False),
    ],
)
def test_one_check_tells_urls_from_bundle_paths(text: str | Path, want: bool) -> None:
    assert is_triton_url(text) is want


def test_load_routes_urls_and_explains_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="drop --backend torch"):
        load("triton://127.0.0.1:1/m", backend="torch")
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "tritonclient.http", None)
        with pytest.raises(ConfigError, match="pip install 'simokit\\[serve\\]'"):
            load("triton://127.0.0.1:1/m")
    from serve_helpers import require_module

    require_module("tritonclient.http")
    with pytest.raises(TritonError, match=r"cannot reach Triton at 127\.0\.0\.1:1 "):
        load(Path("triton://127.0.0.1:1/m"))
    with pytest.raises(BundleError, match="not a simokit bundle"):
        meta_from_config({"name": "m", "parameters": {}}, "model 'm'")


def test_server_environment_pieces() -> None:
    assert server_library_path("/a:/py/lib:/b", "/py/lib") == "/py/lib:/a:/b"
    assert server_library_path(None, "/py/lib") == "/py/lib"
    assert server_library_path("/a", None) == "/a"
    libdir = libpython_dir()
    if libdir is not None:
        import sysconfig

        assert (Path(libdir) / sysconfig.get_config_var("INSTSONAME")).is_file()
    with pytest.raises(ConfigError, match=r"numpy 2\.1\.0 is installed"):
        check_numpy("2.1.0", ["numpy<2.0.0,>=1.21", "pyzmq>=23.0"])
    check_numpy("1.26.4", ["numpy<2.0.0,>=1.21"])
    check_numpy("2.1.0", ["numpy>=1.21"])


def test_a_failed_start_is_summarised_on_one_line(tmp_path: Path) -> None:
    from simokit.runtime.serve_env import start_failure

    stub = "[400] load failed for model 'm': Model initialize error: Traceback\n  File x\n"
    stub += "AttributeError: no _rc\n;"
    assert start_failure(stub, tmp_path / "none.log") == (
        "[400] load failed for model 'm': Model initialize error: Traceback ... AttributeError: no _rc"
    )
    log = tmp_path / "triton.log"
    log.write_text("I1126 started\nE1126 failed to bind 0.0.0.0:8000\nI1126 exiting\n")
    assert start_failure("timed out", log) == "timed out ... E1126 failed to bind 0.0.0.0:8000"


def test_the_dev_extra_brings_the_triton_client() -> None:
    """The tests above need tritonclient; with it in `dev` they run wherever the test command runs."""
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(Path(__file__).resolve().parents[2] / "setup.cfg")
    dev = [line.strip() for line in cfg["options.extras_require"]["dev"].splitlines()]
    assert any(line.startswith("tritonclient[http,grpc]") for line in dev), dev


def test_serve_round_trip(bundle: Path) -> None:
    """`simokit serve` on a real tritonserver; triton:// over HTTP and gRPC equals the local engine."""
    from serve_helpers import start_serve

    if read_meta(bundle).input.kind != "uint8":
        pytest.skip("one round trip (the uint8 bundle) is enough")
    server = start_serve(bundle, "tiny")
    try:
        local = load(bundle)
        frames = np.random.default_rng(3).integers(0, 256, size=(11, 40, 60, 3), dtype=np.uint8)
        want = local.infer(frames)
        for url in (server.url("http"), server.url("grpc")):
            remote = load(url)
            assert remote.meta == local.meta and remote.max_batch == 8  # type: ignore[attr-defined]
            got = remote.infer(frames)  # 11 frames: two requests of at most 8
            for task in TASKS:
                assert got[task].shape == want[task].shape
                np.testing.assert_allclose(got[task], want[task], rtol=0, atol=1e-5)
            assert "triton" in remote.describe()
            remote.close()  # type: ignore[attr-defined]
    finally:
        code, out, seconds = server.stop(signal.SIGINT)
    assert code == 0 and "stopped" in out, out
    assert seconds < 30


def test_profile_engine_times_any_engine(bundle: Path) -> None:
    from simokit.profile.engine_bench import engine_table, profile_engine

    result = profile_engine(load(bundle), batches=(1, 3), warmup=1, iters=3)
    assert list(result["batches"]) == ["1", "3"] and result["engine"].startswith("onnxruntime")
    for row in result["batches"].values():
        assert 0 < row["p50_ms"] <= row["p99_ms"]
    assert engine_table(result).count("\n| ") == 3  # header + two batch rows

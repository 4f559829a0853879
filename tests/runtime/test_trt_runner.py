"""TrtEngine's buffer, binding and CUDA-graph logic, run against fake TensorRT and CUDA modules.

The fakes implement just the calls the runner makes (tensor table, set_input_shape,
set_tensor_address, execute_async_v3; malloc, pinned host memory, async copies, graph capture) and
compute outputs from the bytes in "device" memory, so a wrong address, size or binding shows up
as wrong numbers. This checks simokit's side; the real TensorRT and cuda-python never ran here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from simokit.errors import ShapeError
from simokit.runtime import load
from simokit.runtime.bundle import BundleError
from simokit.runtime.trt import ENGINE_FILE, cuda
from simokit.runtime.trt.runner import MAX_SLOTS
from simokit.runtime.trt.sidecar import EngineInfo, file_sha256, write_sidecar

SHAPES = {"seg": (11, 8, 8), "depth": (1, 8, 8), "normal": (3, 8, 8)}
CLASSES = np.arange(11, dtype=np.float32)[None, :, None, None]


class FakeCuda:
    """Device memory as numpy byte arrays keyed by address; a stream capture records enqueues."""

    def __init__(self) -> None:
        self.mem: dict[int, np.ndarray] = {}
        self.capturing: list[Callable[[], None]] | None = None
        self.graphs: dict[int, list[Callable[[], None]]] = {}
        self.freed: list[int] = []

    def malloc(self, n: int) -> int:
        address = 1000 + len(self.mem)
        self.mem[address] = np.zeros(n, np.uint8)
        return address

    def to_device(self, dst: int, src: np.ndarray, stream: object) -> None:
        self.mem[dst][: src.nbytes] = src.reshape(-1).view(np.uint8)

    def to_host(self, dst: np.ndarray, src: int, stream: object) -> None:
        dst.reshape(-1).view(np.uint8)[:] = self.mem[src][: dst.nbytes]

    def end_capture(self, stream: object) -> tuple[int, int]:
        key = len(self.graphs)
        self.graphs[key], self.capturing = self.capturing or [], None
        return key, key

    def launch(self, executable: int, stream: object) -> None:
        for op in self.graphs[executable]:
            op()

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        host = lambda shape, dtype: (np.zeros(shape, dtype), 0)  # noqa: E731
        for name, fn in {
            "device_info": lambda device=0: ("Orin", "8.7"),
            "stream_create": lambda: "stream",
            "stream_handle": lambda s: 7,
            "stream_sync": lambda s: None,
            "stream_destroy": lambda s: None,
            "malloc": self.malloc,
            "free": self.freed.append,
            "host_alloc": host,
            "host_free": lambda a: None,
            "copy_to_device": self.to_device,
            "copy_to_host": self.to_host,
            "begin_capture": lambda s: setattr(self, "capturing", []),
            "end_capture": self.end_capture,
            "graph_launch": self.launch,
            "graph_destroy": lambda g, e: None,
        }.items():
            monkeypatch.setattr(cuda, name, fn)


class FakeContext:
    """Outputs from the input bytes: seg[c] = c + mean(image), depth = R, normal = G/255."""

    def __init__(self, gpu: FakeCuda) -> None:
        self.gpu, self.shape, self.addr, self.enqueues = gpu, (0,), {}, 0

    def set_input_shape(self, name: str, shape: list[int]) -> bool:
        self.shape = tuple(shape)
        return True

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return (self.shape[0], *SHAPES[name])

    def set_tensor_address(self, name: str, address: int) -> bool:
        self.addr[name] = address
        return True

    def execute_async_v3(self, stream: int) -> bool:
        addr, shape = dict(self.addr), self.shape  # what a captured graph has baked in
        op = lambda: self._compute(addr, shape)  # noqa: E731
        if self.gpu.capturing is not None:
            self.gpu.capturing.append(op)
        else:
            self.enqueues += 1
            op()
        return True

    def _compute(self, addr: dict[str, int], shape: tuple[int, ...]) -> None:
        x = self.gpu.mem[addr["image"]][: int(np.prod(shape))].reshape(shape).astype(np.float32)
        b = shape[0]
        out = {
            "seg": CLASSES + x.mean(axis=(1, 2, 3))[:, None, None, None],
            "depth": x[..., 0][:, None],
            "normal": x[..., 1][:, None].repeat(3, axis=1) / 255.0,
        }
        for name, value in out.items():
            data = np.ascontiguousarray(np.broadcast_to(value, (b, *SHAPES[name])), np.float32)
            self.gpu.mem[addr[name]][: data.nbytes] = data.reshape(-1).view(np.uint8)


class FakeEngine:
    names = ("image", "seg", "depth", "normal")

    def __init__(self, gpu: FakeCuda) -> None:
        self.gpu, self.num_io_tensors, self.contexts = gpu, 4, []

    def get_tensor_name(self, i: int) -> str:
        return self.names[i]

    def get_tensor_mode(self, name: str) -> str:
        return "in" if name == "image" else "out"

    def get_tensor_dtype(self, name: str) -> SimpleNamespace:
        return SimpleNamespace(name="UINT8" if name == "image" else "FLOAT")

    def get_tensor_profile_shape(self, name: str, index: int) -> list[tuple[int, ...]]:
        return [(1, 8, 8, 3), (1, 8, 8, 3), (4, 8, 8, 3)]

    def create_execution_context(self) -> FakeContext:
        self.contexts.append(FakeContext(self.gpu))
        return self.contexts[-1]


def _install(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    engine_cls: type[FakeEngine],
    meta: Any,
    prof: dict[str, Any],
) -> tuple[Path, FakeCuda, list[FakeEngine]]:
    """Fake tensorrt and cuda modules, and a bundle with `meta`, an engine file and its sidecar."""
    gpu, engines = FakeCuda(), []
    gpu.install(monkeypatch)

    def deserialize(data: bytes) -> FakeEngine:
        engines.append(engine_cls(gpu))
        return engines[-1]

    class Logger:
        WARNING = 2

        def __init__(self, severity: Any = None) -> None:
            pass

    runtime = lambda logger: SimpleNamespace(deserialize_cuda_engine=deserialize, DLA_core=-1)  # noqa: E731
    modes = SimpleNamespace(INPUT="in", OUTPUT="out")
    trt = SimpleNamespace(__version__="10.3.0", Logger=Logger, Runtime=runtime, TensorIOMode=modes)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr("simokit.runtime.trt.runner.require", lambda name: None)
    root = tmp_path / "bundle"
    root.mkdir()
    (root / "meta.json").write_text(meta.to_json())
    (root / "model.onnx").write_bytes(b"graph")
    (root / ENGINE_FILE).write_bytes(b"plan")
    info = EngineInfo(
        "10.3.0",
        "Orin",
        "8.7",
        "fp16",
        [prof],
        "model.onnx",
        file_sha256(root / "model.onnx"),
        file_sha256(root / ENGINE_FILE),
    )
    write_sidecar(root, info)
    return root, gpu, engines


@pytest.fixture()
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, FakeCuda, list[FakeEngine]]:
    from simokit.runtime.bundle import BundleMeta, InputSpec

    outputs = {t: {"dtype": "float32", "shape": ["B", *s], "kind": "values"} for t, s in SHAPES.items()}
    meta = BundleMeta(tuple(SHAPES), InputSpec("image", "uint8", 8, 8, (0.5,) * 3, (0.5,) * 3), outputs)
    prof = {"input": "image", "min": [1, 8, 8, 3], "opt": [1, 8, 8, 3], "max": [4, 8, 8, 3]}
    return _install(tmp_path, monkeypatch, FakeEngine, meta, prof)


def _expected(bgr: np.ndarray) -> dict[str, np.ndarray]:
    rgb = bgr[..., ::-1].astype(np.float32)
    b = len(bgr)
    return {
        "seg": CLASSES + rgb.mean(axis=(1, 2, 3))[:, None, None, None] + np.zeros((b, 11, 8, 8), np.float32),
        "depth": rgb[..., 0][:, None],
        "normal": rgb[..., 1][:, None].repeat(3, axis=1) / 255.0,
    }


def _frames(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 8, 8, 3), dtype=np.uint8)


@pytest.mark.parametrize("graph", [False, True])
def test_runner_binds_buffers_per_shape_and_returns_copies(
    fake: tuple[Path, FakeCuda, list[FakeEngine]], graph: bool
) -> None:
    root, gpu, engines = fake
    engine = load(root, backend="tensorrt", cuda_graph=graph, precision="fp16")
    assert engine.describe() == f"tensorrt 10.3.0 (Orin, fp16{', CUDA graphs' if graph else ''})"
    results = []
    for n, seed in ((2, 0), (2, 1), (3, 2), (2, 3)):  # shape changes back and forth
        frames = _frames(n, seed)
        out = engine.infer(frames)
        results.append(out)
        for task, want in _expected(frames).items():
            np.testing.assert_allclose(out[task], want, rtol=1e-6, atol=1e-5)
    first = _expected(_frames(2, 0))["depth"]
    np.testing.assert_allclose(results[0]["depth"], first)  # a copy: not overwritten by later frames
    context = engines[0].contexts[0]
    assert len(gpu.mem) == 2 * 4  # device buffers for two shapes, allocated once each
    # with graphs: one warm-up enqueue per shape, then every frame replays the graph
    assert context.enqueues == (2 if graph else 4) and len(gpu.graphs) == (2 if graph else 0)
    with pytest.raises(ShapeError, match="outside the engine's profile"):
        engine.infer(_frames(5, 4))
    engine.close()
    assert sorted(gpu.freed) == sorted(gpu.mem)
    with pytest.raises(BundleError, match="closed"):
        engine.infer(_frames(1, 5))


def test_runner_refuses_a_precision_the_engine_lacks(fake: tuple[Path, FakeCuda, list[FakeEngine]]) -> None:
    from simokit.errors import ConfigError

    with pytest.raises(ConfigError, match="built as fp16, not int8"):
        load(fake[0], backend="tensorrt", precision="int8")


# --- a frame-IO engine: the camera frame goes in as it is, outputs follow its height and width ---


class FrameContext(FakeContext):
    """seg = uint8 labels (R > 127), depth = R, at the frame's size; `wrong` shrinks depth's width."""

    wrong = False

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        b, h, w = self.shape[:3]
        return {"seg": (b, h, w), "depth": (b, 1, h, w - self.wrong)}[name]

    def _compute(self, addr: dict[str, int], shape: tuple[int, ...]) -> None:
        x = self.gpu.mem[addr["image"]][: int(np.prod(shape))].reshape(shape)
        for name, value in {
            "seg": (x[..., 2] > 127).astype(np.uint8),
            "depth": x[..., 2][:, None] / 1.0,
        }.items():
            data = np.ascontiguousarray(value, np.uint8 if name == "seg" else np.float32)
            self.gpu.mem[addr[name]][: data.nbytes] = data.reshape(-1).view(np.uint8)


class FrameEngine(FakeEngine):
    names = ("image", "seg", "depth")

    def __init__(self, gpu: FakeCuda) -> None:
        super().__init__(gpu)
        self.num_io_tensors = 3

    def get_tensor_dtype(self, name: str) -> SimpleNamespace:
        return SimpleNamespace(name={"seg": "UINT8", "depth": "FLOAT"}.get(name, "UINT8"))

    def get_tensor_profile_shape(self, name: str, index: int) -> list[tuple[int, ...]]:
        return [(1, 16, 16, 3), (1, 30, 40, 3), (2, 64, 96, 3)]

    def create_execution_context(self) -> FakeContext:
        self.contexts.append(FrameContext(self.gpu))
        return self.contexts[-1]


@pytest.fixture()
def frame_fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, FakeCuda, list[FakeEngine]]:
    from simokit.runtime.bundle import BundleMeta, Channels, GraphIO, InputSpec

    spec = InputSpec("image", "uint8", 14, 14, (0.5,) * 3, (0.5,) * 3, False, GraphIO.FRAME, Channels.BGR)
    outputs = {
        "seg": {"dtype": "uint8", "shape": ["B", "H", "W"], "kind": "labels"},
        "depth": {"dtype": "float32", "shape": ["B", 1, "H", "W"], "kind": "values"},
    }
    prof = {"input": "image", "min": [1, 16, 16, 3], "opt": [1, 30, 40, 3], "max": [2, 64, 96, 3]}
    return _install(tmp_path, monkeypatch, FrameEngine, BundleMeta(("seg", "depth"), spec, outputs), prof)


def test_frame_io_runner_sizes_outputs_per_frame_and_refuses_frames_outside_the_profile(
    frame_fake: tuple[Path, FakeCuda, list[FakeEngine]],
) -> None:
    root, gpu, _ = frame_fake
    engine = load(root, backend="tensorrt")
    rng = np.random.default_rng(0)
    for shape in ((30, 40, 3), (2, 64, 96, 3), (16, 17, 3), (30, 40, 3)):
        frames = rng.integers(0, 256, size=shape, dtype=np.uint8)
        out = engine.infer(frames)  # BGR frames straight into the engine: R is channel 2
        assert out["seg"].dtype == np.uint8 and out["seg"].shape == shape[:-1]
        np.testing.assert_array_equal(out["seg"], frames[..., 2] > 127)
        np.testing.assert_array_equal(out["depth"], frames[..., 2][..., None, :, :].astype(np.float32))
    assert len(gpu.mem) == 3 * 3  # three frame sizes, buffers allocated once each
    with pytest.raises(
        ShapeError, match=r"frame 1080x1920 is outside .* 16x16..64x96; .* --frame-max 1080x1920"
    ):
        engine.infer(np.zeros((1080, 1920, 3), np.uint8))
    with pytest.raises(ShapeError, match=r"frame 8x40 .* --frame-min 8x16$"):
        engine.infer(np.zeros((8, 40, 3), np.uint8))
    with pytest.raises(ShapeError, match=r"batch of 3 frames is outside the engine's batch range 1..2"):
        engine.infer(np.zeros((3, 30, 40, 3), np.uint8))
    FrameContext.wrong = True  # an engine whose outputs disagree with meta.json is refused
    try:
        with pytest.raises(
            BundleError, match=r"engine output 'depth' is \[1, 1, 20, 19\] .* \[1, 1, 20, 20\]"
        ):
            engine.infer(np.zeros((20, 20, 3), np.uint8))
    finally:
        FrameContext.wrong = False
    assert len(gpu.mem) == 3 * 3  # the refused size left no buffers behind
    for h in range(40, 45):  # photos of many sizes: only the MAX_SLOTS most recent keep buffers
        engine.infer(np.zeros((h, 50, 3), np.uint8))
    assert len(gpu.mem) == 3 * 8 and len(gpu.freed) == 3 * (8 - MAX_SLOTS)
    out = engine.infer(np.full((30, 40, 3), 200, np.uint8))  # evicted earlier: allocated again, still right
    assert out["seg"].all() and len(gpu.mem) == 3 * 9
    engine.close()
    assert sorted(gpu.freed) == sorted(gpu.mem)

"""TrtEngine: runs `<bundle>/model.engine` with TensorRT 10 and cuda-python, same API as OrtEngine.

Per input shape it allocates device buffers and pinned host buffers once, binds them with
set_input_shape/set_tensor_address, and then each frame is: copy into the pinned input, one
async host->device copy, execute_async_v3 (or the replay of a captured CUDA graph), async
device->host copies, one stream synchronise. Pre- and post-processing are Engine's, so outputs
match the ONNX Runtime backend within the engine's precision. A frame-IO engine takes the camera
frame itself: its output buffers take their height and width from each frame's shape (labels
uint8); frames outside the engine's frame range are refused naming the rebuild flag. That path has
run against fake TensorRT and CUDA modules only, never on TensorRT.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from simokit.errors import ShapeError
from simokit.runtime.bundle import BundleError, BundleMeta, GraphIO
from simokit.runtime.capabilities import OpenOptions, require
from simokit.runtime.engine import Engine
from simokit.runtime.trt import ENGINE_FILE, cuda
from simokit.runtime.trt.profiles import Profile, output_shape, refusal
from simokit.runtime.trt.sidecar import check_engine, check_precision, read_sidecar

if TYPE_CHECKING:
    import tensorrt as trt

log = logging.getLogger(__name__)
MAX_SLOTS = 4  # input shapes whose buffers (and CUDA graph) stay allocated at once

NUMPY_TYPES = {
    "FLOAT": np.float32,
    "HALF": np.float16,
    "INT8": np.int8,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "BOOL": np.bool_,
}


def numpy_dtype(trt_type_name: str) -> np.dtype[Any]:
    """numpy dtype for a TensorRT DataType name ('FLOAT', 'HALF', ...); BundleError if none fits."""
    if trt_type_name not in NUMPY_TYPES:
        raise BundleError(f"engine tensor type {trt_type_name} has no numpy equivalent; rebuild the engine")
    return np.dtype(NUMPY_TYPES[trt_type_name])


@dataclass
class _Slot:
    """Buffers for one input shape: (host array, host address, device address) per tensor."""

    shape: tuple[int, ...]
    tensors: dict[str, tuple[np.ndarray, int, int]]
    graph: tuple[cuda.Handle, cuda.Handle] | None = None


class TrtEngine(Engine):
    """A bundle's TensorRT engine on one GPU, checked against its sidecar before loading."""

    backend = "tensorrt"

    def __init__(
        self,
        root: Path,
        meta: BundleMeta,
        cuda_graph: bool = False,
        precision: str | None = None,
        device: int = 0,
        verify: bool = True,
    ) -> None:
        require("tensorrt")
        import tensorrt as trt

        self.meta = meta
        self.info = read_sidecar(root)
        check_precision(precision, self.info.precision)
        self.gpu, capability = cuda.device_info(device)
        check_engine(root, self.info, trt.__version__, self.gpu, capability, hashes=verify)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        if self.info.dla_core is not None:
            self._runtime.DLA_core = self.info.dla_core
        engine = self._runtime.deserialize_cuda_engine((root / ENGINE_FILE).read_bytes())
        if engine is None:
            raise BundleError(f"{root / ENGINE_FILE}: TensorRT cannot deserialize it; see its messages above")
        self._engine = engine
        self._context = engine.create_execution_context()
        self._input, self._types = self._io(engine)
        lo, opt, hi = engine.get_tensor_profile_shape(self._input, 0)
        self.profile = Profile(self._input, _dims(lo), _dims(opt), _dims(hi))
        self.cuda_graph = cuda_graph
        self._stream = cuda.stream_create()
        self._closed = False
        self._slots: dict[tuple[int, ...], _Slot] = {}
        self._active: tuple[int, ...] | None = None

    def _io(self, engine: trt.ICudaEngine) -> tuple[str, dict[str, np.dtype[Any]]]:
        """The input's name and every tensor's numpy dtype; the outputs must be the bundle's tasks."""
        import tensorrt as trt

        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if inputs != [self.meta.input.name] or sorted(outputs) != sorted(self.meta.tasks):
            raise BundleError(
                f"engine tensors {inputs} -> {outputs} differ from meta.json "
                f"{self.meta.input.name} -> {list(self.meta.tasks)}; rebuild: simokit build-engine"
            )
        return inputs[0], {n: numpy_dtype(engine.get_tensor_dtype(n).name) for n in names}

    def _run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        if self._closed:
            raise BundleError("this TensorRT engine was closed; load the bundle again")
        slot = self._slot(tuple(int(d) for d in x.shape))
        host_in, _, device_in = slot.tensors[self._input]
        np.copyto(host_in, x, casting="same_kind")
        cuda.copy_to_device(device_in, host_in, self._stream)
        self._enqueue(slot)
        for task in self.meta.tasks:
            host, _, device = slot.tensors[task]
            cuda.copy_to_host(host, device, self._stream)
        cuda.stream_sync(self._stream)
        # copies: the pinned buffers are overwritten by the next frame
        return {t: slot.tensors[t][0].astype(self.meta.outputs[t]["dtype"]) for t in self.meta.tasks}

    def _enqueue(self, slot: _Slot) -> None:
        if slot.graph is not None:
            cuda.graph_launch(slot.graph[1], self._stream)
        elif not self._context.execute_async_v3(cuda.stream_handle(self._stream)):
            raise ShapeError(f"TensorRT refused to run input shape {slot.shape}; see its messages above")

    def _slot(self, shape: tuple[int, ...]) -> _Slot:
        """Buffers for `shape`, allocated on first use and bound to the context."""
        slot = self._slots.pop(shape, None)
        if slot is None:
            why = refusal(self.profile, shape, frame=self.meta.input.io is GraphIO.FRAME)
            if why:
                raise ShapeError(why)
            if len(self._slots) >= MAX_SLOTS:  # a folder of photos of many sizes: keep the recent ones
                self._free(self._slots.pop(next(iter(self._slots))))
            slot = self._allocate(shape)
        self._slots[shape] = slot  # last = most recently used
        if self._active != shape:
            self._bind(slot)
        return slot

    def _allocate(self, shape: tuple[int, ...]) -> _Slot:
        if not self._context.set_input_shape(self._input, list(shape)):
            raise ShapeError(f"TensorRT rejected input shape {list(shape)}")
        self._active = None  # the context now holds `shape` but no addresses for it yet
        slot = _Slot(shape, {})
        # every shape first, so a refused output leaves no buffers behind
        sizes = {n: shape if n == self._input else self._output_dims(n, shape) for n in self._types}
        for name, dtype in self._types.items():
            host, address = cuda.host_alloc(sizes[name], dtype)
            slot.tensors[name] = (host, address, cuda.malloc(host.nbytes))
        return slot

    def _output_dims(self, name: str, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The output's shape for input `shape` as TensorRT resolves it (a frame-IO graph's outputs
        follow the frame), checked against meta.json's so a mismatched engine cannot overrun buffers."""
        dims = _dims(self._context.get_tensor_shape(name))
        want = output_shape(self.meta.outputs[name]["shape"], shape, self.meta.input.kind)
        if dims != want:
            raise BundleError(
                f"engine output '{name}' is {list(dims)} for input {list(shape)}, meta.json says "
                f"{list(want)}; rebuild: simokit build-engine"
            )
        return dims

    def _bind(self, slot: _Slot) -> None:
        self._context.set_input_shape(self._input, list(slot.shape))
        for name, (_, _, device) in slot.tensors.items():
            if not self._context.set_tensor_address(name, device):
                raise BundleError(f"TensorRT rejected the buffer for tensor '{name}'")
        self._active = slot.shape
        if self.cuda_graph and slot.graph is None:
            self._capture(slot)

    def _capture(self, slot: _Slot) -> None:
        """Record one enqueue as a CUDA graph; replaying it saves the per-layer launch cost."""
        handle = cuda.stream_handle(self._stream)
        try:
            # an enqueue right after a shape change does setup work that must not be captured
            self._context.execute_async_v3(handle)
            cuda.stream_sync(self._stream)
            cuda.begin_capture(self._stream)
            ok = self._context.execute_async_v3(handle)
            graph = cuda.end_capture(self._stream)
        except cuda.CudaError as exc:
            log.warning("CUDA graph capture failed for shape %s (%s); running without", slot.shape, exc)
            self.cuda_graph = False
            return
        if not ok:
            cuda.graph_destroy(*graph)
            raise ShapeError(f"TensorRT could not enqueue input shape {slot.shape} for capture")
        slot.graph = graph

    def describe(self) -> str:
        """Backend, TensorRT version, GPU, precision and whether CUDA graphs are replayed."""
        graphs = ", CUDA graphs" if self.cuda_graph else ""
        return f"tensorrt {self.info.tensorrt} ({self.gpu}, {self.info.precision}{graphs})"

    def close(self) -> None:
        """Free the buffers, graphs and stream (pinned memory is not returned until then or exit)."""
        for slot in self._slots.values():
            self._free(slot)
        self._slots.clear()
        self._active = None
        if not self._closed:
            cuda.stream_destroy(self._stream)
            self._closed = True

    def _free(self, slot: _Slot) -> None:
        if slot.graph is not None:
            cuda.graph_destroy(*slot.graph)
        for _, host_address, device in slot.tensors.values():
            cuda.free(device)
            cuda.host_free(host_address)
        if self._active == slot.shape:
            self._active = None


def open_engine(root: Path, meta: BundleMeta, opts: OpenOptions) -> TrtEngine:
    """The 'tensorrt' opener: the bundle's model.engine, whose precision must match `precision` (the
    GPU runs it: there are no CPU threads to spin)."""
    return TrtEngine(root, meta, cuda_graph=opts.cuda_graph, precision=opts.precision)


def _dims(dims: trt.Dims) -> tuple[int, ...]:
    return tuple(int(dims[i]) for i in range(len(dims)))

"""The few CUDA runtime calls the TensorRT runner needs, through cuda-python, behind typed functions.

cuda-python returns `(error, value...)` tuples and ships no type hints; every call goes through
`_call`, which turns a non-success code into CudaError naming the call. Device and pinned host
memory are plain integer addresses; streams and graphs are opaque handles (`Handle`).
"""

from __future__ import annotations

import ctypes
import functools
from types import ModuleType
from typing import Any, NewType

import numpy as np

from simokit.errors import ConfigError, SimokitError

Handle = NewType("Handle", object)


class CudaError(SimokitError):
    """A CUDA runtime call failed (no GPU, driver mismatch, out of memory)."""


@functools.cache
def _runtime() -> ModuleType:
    try:
        from cuda.bindings import runtime
    except ImportError:
        try:  # cuda-python < 12.6 exposed the same API as cuda.cudart
            from cuda import cudart as runtime
        except ImportError:
            raise ConfigError(
                "the TensorRT backend needs cuda-python: pip install cuda-python (matching your CUDA major)"
            ) from None
    module: ModuleType = runtime
    return module


def _call(what: str, result: Any) -> Any:
    """Unpack `(err, *values)`; raise CudaError unless err is cudaSuccess."""
    rt = _runtime()
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != rt.cudaError_t.cudaSuccess:
        _, name = rt.cudaGetErrorName(err)
        raise CudaError(f"CUDA {what} failed: {name.decode() if isinstance(name, bytes) else name}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def device_info(device: int = 0) -> tuple[str, str]:
    """(GPU name, compute capability 'major.minor') of `device`, e.g. ('Orin', '8.7')."""
    rt = _runtime()
    _call("cudaSetDevice", rt.cudaSetDevice(device))
    props = _call("cudaGetDeviceProperties", rt.cudaGetDeviceProperties(device))
    raw = props.name
    name = raw.split(b"\0", 1)[0].decode() if isinstance(raw, bytes) else str(raw)
    return name.strip(), f"{int(props.major)}.{int(props.minor)}"


def stream_create() -> Handle:
    """A new non-default CUDA stream."""
    return Handle(_call("cudaStreamCreate", _runtime().cudaStreamCreate()))


def stream_handle(stream: Handle) -> int:
    """The stream's address as TensorRT's execute_async_v3 takes it."""
    value: int = int(stream)  # type: ignore[call-overload]  # cuda-python handles define __int__, untyped
    return value


def stream_sync(stream: Handle) -> None:
    """Wait until all work queued on `stream` has finished."""
    _call("cudaStreamSynchronize", _runtime().cudaStreamSynchronize(stream))


def stream_destroy(stream: Handle) -> None:
    """Release a stream from stream_create."""
    _call("cudaStreamDestroy", _runtime().cudaStreamDestroy(stream))


def malloc(nbytes: int) -> int:
    """Device memory of `nbytes` (at least 1 byte); returns its address."""
    return int(_call("cudaMalloc", _runtime().cudaMalloc(max(nbytes, 1))))


def free(address: int) -> None:
    """Release device memory from malloc."""
    _call("cudaFree", _runtime().cudaFree(address))


def host_alloc(shape: tuple[int, ...], dtype: np.dtype[Any]) -> tuple[np.ndarray, int]:
    """A pinned (page-locked) host array of `shape`/`dtype`, and its address for host_free.

    Pinned memory makes cudaMemcpyAsync truly asynchronous and roughly twice as fast as pageable.
    """
    nbytes = max(int(np.prod(shape)) * dtype.itemsize, 1)
    address = int(_call("cudaMallocHost", _runtime().cudaMallocHost(nbytes)))
    raw = memoryview((ctypes.c_uint8 * nbytes).from_address(address)).cast("B")
    array = np.frombuffer(raw, dtype=np.uint8)[: int(np.prod(shape)) * dtype.itemsize]
    return array.view(dtype).reshape(shape), address


def host_free(address: int) -> None:
    """Release pinned host memory from host_alloc."""
    _call("cudaFreeHost", _runtime().cudaFreeHost(address))


def copy_to_device(dst: int, src: np.ndarray, stream: Handle) -> None:
    """Queue a host -> device copy of `src` (pinned for overlap) on `stream`."""
    rt = _runtime()
    kind = rt.cudaMemcpyKind.cudaMemcpyHostToDevice
    _call("cudaMemcpyAsync", rt.cudaMemcpyAsync(dst, src.ctypes.data, src.nbytes, kind, stream))


def copy_to_host(dst: np.ndarray, src: int, stream: Handle) -> None:
    """Queue a device -> host copy into `dst` (contiguous, pinned for overlap) on `stream`."""
    rt = _runtime()
    kind = rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
    _call("cudaMemcpyAsync", rt.cudaMemcpyAsync(dst.ctypes.data, src, dst.nbytes, kind, stream))


def begin_capture(stream: Handle) -> None:
    """Start recording the work queued on `stream` into a CUDA graph."""
    rt = _runtime()
    mode = rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
    _call("cudaStreamBeginCapture", rt.cudaStreamBeginCapture(stream, mode))


def end_capture(stream: Handle) -> tuple[Handle, Handle]:
    """Stop recording; returns (graph, executable graph) for graph_launch and graph_destroy."""
    rt = _runtime()
    graph = _call("cudaStreamEndCapture", rt.cudaStreamEndCapture(stream))
    executable = _call("cudaGraphInstantiateWithFlags", rt.cudaGraphInstantiateWithFlags(graph, 0))
    return Handle(graph), Handle(executable)


def graph_launch(executable: Handle, stream: Handle) -> None:
    """Replay a captured graph on `stream`."""
    _call("cudaGraphLaunch", _runtime().cudaGraphLaunch(executable, stream))


def graph_destroy(graph: Handle, executable: Handle) -> None:
    """Release a graph pair from end_capture."""
    rt = _runtime()
    _call("cudaGraphExecDestroy", rt.cudaGraphExecDestroy(executable))
    _call("cudaGraphDestroy", rt.cudaGraphDestroy(graph))

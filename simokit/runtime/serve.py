"""`simokit serve`: a bundle on a real Triton Inference Server, started through nvidia-pytriton.

pytriton runs the tritonserver binary it ships; Triton's Python backend hands each (dynamically
batched) request to this process, where the bundle's Engine runs the graph. The served model has
the IO and config parameters of an `export-triton` repository, so triton:// engines work against
both. Before announcing the URL, serve sends one request through the server and checks the answer
equals the local engine's, so a broken server setup fails loudly instead of serving empty arrays.

Ctrl-C or SIGTERM stops the server and removes its workspace. Stopping tritonserver while requests
are in flight crashed it (SIGSEGV at exit), left its Python-backend stubs running as orphans and
leaked its /dev/shm segments; so serve first unloads the model through Triton's model-control API
(new requests are refused, the ones in flight finish), then stops the server, ignoring further
signals until it is down. Bad requests (wrong dtype, rank or size, empty or oversized batches) are
refused by Triton before they reach the engine.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simokit.cache import cache_root
from simokit.errors import ConfigError, SimokitError
from simokit.runtime.engine import Engine
from simokit.runtime.loading import load
from simokit.runtime.serve_env import (
    check_ports,
    require_pytriton,
    server_environment,
    signals_ignored,
    start_failure,
    stop_signals,
)
from simokit.runtime.triton_io import (
    META_PARAMETER,
    example_shape,
    input_dims,
    input_dtype,
    meta_parameter,
    output_dims,
)

DRAIN_TIMEOUT_S = 10.0


class ServeError(SimokitError):
    """The server did not start, or answered differently from the local engine."""


@dataclass(frozen=True)
class ServeOptions:
    """Ports are port (HTTP), port + 1 (gRPC), port + 2 (metrics), as Triton's defaults are."""

    port: int = 8000
    host: str = "0.0.0.0"
    name: str | None = None
    max_batch: int = 8
    queue_delay_us: int = 500
    dynamic_batching: bool = True
    instances: int = 1
    threads: int | None = None


@dataclass(frozen=True)
class Endpoints:
    """Where the served model answers."""

    http: str
    grpc: str
    metrics: str
    log: Path


def serve(bundle: str | Path, opts: ServeOptions, on_ready: Callable[[Endpoints], None]) -> None:
    """Serve `bundle` until Ctrl-C or SIGTERM; call `on_ready` once the round-trip check passed."""
    version = require_pytriton()
    if opts.max_batch < 1 or opts.instances < 1 or opts.queue_delay_us < 0:
        raise ConfigError("--max-batch and --instances must be >= 1 and --queue-delay-us >= 0")
    name = opts.name or Path(bundle).resolve().name
    _validate_name(name)
    check_ports(opts.host, opts.port)
    engine = load(bundle, threads=opts.threads)
    local = "127.0.0.1" if opts.host in ("0.0.0.0", "") else opts.host
    log = cache_root() / "serve" / f"{name}.{opts.port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.unlink(missing_ok=True)  # its error lines are quoted if the start fails
    ends = Endpoints(
        f"triton://{local}:{opts.port}/{name}",
        f"triton+grpc://{local}:{opts.port + 1}/{name}",
        f"http://{local}:{opts.port + 2}/metrics",
        log,
    )
    token = secrets.token_urlsafe(32)  # for the model-control API, which only this process may use
    triton = _bind(engine, name, opts, log, version, token)
    with stop_signals():
        try:
            _start(triton, log)
            _round_trip(engine, ends.http, log)
            on_ready(ends)
            while triton.is_alive():
                time.sleep(0.5)
            raise ServeError(f"Triton stopped unexpectedly; see {log}")
        except KeyboardInterrupt:
            pass
        finally:
            with signals_ignored():  # a second Ctrl-C or SIGTERM would orphan tritonserver
                if triton.is_alive():
                    _drain(f"{local}:{opts.port}", name, token)
                triton.stop()


def _bind(engine: Engine, name: str, opts: ServeOptions, log: Path, version: str, token: str) -> Any:
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig, TritonSecurityConfig

    meta = engine.meta
    in_dims = input_dims(meta)
    host = opts.host or "0.0.0.0"
    config = TritonConfig(
        http_address=host,
        http_port=opts.port,
        grpc_address=host,
        grpc_port=opts.port + 1,
        metrics_address=host,
        metrics_port=opts.port + 2,
        exit_timeout_secs=3,  # then in-flight HTTP keep-alive connections no longer hold up Ctrl-C
        allow_gpu_metrics=Path("/dev/nvidiactl").exists(),  # else DCGM prints an NVML error at start
        log_file=log,
    )
    batcher = None
    if opts.dynamic_batching:
        batcher = DynamicBatcher(
            max_queue_delay_microseconds=opts.queue_delay_us, preferred_batch_size=[opts.max_batch]
        )
    triton = Triton(config=config, security_config=TritonSecurityConfig(access_token=token))
    triton.bind(
        model_name=name,
        infer_func=[_infer_fn(engine) for _ in range(opts.instances)],
        inputs=[Tensor(name=meta.input.name, dtype=np.dtype(input_dtype(meta)).type, shape=tuple(in_dims))],
        outputs=[
            Tensor(name=t, dtype=np.dtype(meta.outputs[t]["dtype"]).type, shape=tuple(d))
            for t, d in output_dims(meta).items()
        ],
        config=ModelConfig(batching=True, max_batch_size=opts.max_batch, batcher=batcher),
    )
    try:  # pytriton has no public hook for config parameters; its cached config is edited before loading
        (model,) = [m for m in triton._model_manager.models if m.model_name == name]
        model._get_triton_model_config().backend_parameters[META_PARAMETER] = meta_parameter(meta)
    except (AttributeError, ValueError, TypeError):
        raise ConfigError(f"nvidia-pytriton {version} changed its internals; serve needs 0.7.x") from None
    return triton


def _drain(address: str, name: str, token: str, timeout_s: float = DRAIN_TIMEOUT_S) -> None:
    """Unload the model before stopping: Triton refuses new requests and finishes the ones in flight."""
    import tritonclient.http as http

    client = http.InferenceServerClient(address, connection_timeout=timeout_s, network_timeout=timeout_s)
    try:
        client.unload_model(name, headers={"triton-access-token": token})
        deadline = time.monotonic() + timeout_s
        while client.is_model_ready(name) and time.monotonic() < deadline:
            time.sleep(0.1)
    except (OSError, http.InferenceServerException):
        pass  # the server is already going: stop() below does the rest
    finally:
        client.close()


def _start(triton: Any, log: Path) -> None:
    from pytriton.client.exceptions import PyTritonClientError
    from pytriton.exceptions import PyTritonError
    from tritonclient.utils import InferenceServerException

    try:
        with server_environment():
            triton.run()
    except (PyTritonError, PyTritonClientError, InferenceServerException, RuntimeError) as exc:
        raise ServeError(f"Triton did not start ({start_failure(str(exc), log)}); full log: {log}") from None


def _validate_name(name: str) -> None:
    # Triton model names go into URLs and directory names: pytriton allows these characters only.
    if not name or not all(c.isalnum() or c in "._-" for c in name):
        raise ConfigError(f"model name '{name}': use letters, digits, '.', '_' or '-' (set --name)")


def _infer_fn(engine: Engine) -> Callable[..., dict[str, np.ndarray]]:
    from pytriton.decorators import batch

    name = engine.meta.input.name

    @batch
    def infer(**inputs: np.ndarray) -> dict[str, np.ndarray]:
        # Clients send the prepared graph input; the engine's pre-processing already ran on their side.
        return engine._run(np.ascontiguousarray(inputs[name]))

    return infer


def _round_trip(engine: Engine, url: str, log: Path) -> None:
    from simokit.runtime.backends.triton import open_url

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=example_shape(engine.meta)).astype(input_dtype(engine.meta))
    client = open_url(url)
    try:
        got, want = client._run(x), engine._run(x)
    finally:
        client.close()
    for task in engine.tasks:
        g, w = got[task], want[task]
        if g.shape != w.shape or not np.allclose(g, w, rtol=0, atol=1e-5):
            raise ServeError(
                f"the server's '{task}' output ({g.dtype} {g.shape}) differs from the local engine's "
                f"({w.dtype} {w.shape}); see {log}"
            )

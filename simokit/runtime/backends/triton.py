"""triton:// engines: a bundle served by Triton Inference Server, reached with tritonclient.

URL forms: `triton://HOST[:PORT]/MODEL[/VERSION]` speaks HTTP (default port 8000) and
`triton+grpc://HOST[:PORT]/MODEL[/VERSION]` gRPC (default port 8001); `triton+http://` is HTTP
spelled out. The model's config carries the bundle's meta.json (`simokit serve` and
`simokit export-triton` put it there), so the URL is all a client needs. Frames are resized and
laid out here exactly as for a local bundle and outputs mapped back here; the server runs the
graph, in chunks of its max batch size. Each thread gets its own connection, so one engine can be
shared by threads. tritonclient is imported only when an engine is opened.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from os import PathLike
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from simokit.errors import ConfigError
from simokit.runtime.bundle import BundleError
from simokit.runtime.engine import Engine
from simokit.runtime.triton_io import input_dtype, meta_from_config, triton_type

SCHEMES = {"triton": "http", "triton+http": "http", "triton+grpc": "grpc"}
DEFAULT_PORTS = {"http": 8000, "grpc": 8001}
INSTALL_HINT = "install the client: pip install 'simokit[serve]' (or tritonclient[http,grpc])"
# Triton lets through a request that declares batch 0 with one frame's bytes; the Python backend
# (simokit serve) counts that frame's height as its batch and fails every request batched with it.
# Requests never exceed max_batch here, so this error is someone else's: send the request again.
POISONED_BATCH = re.compile(r"batch size \d+ for '[^']*', max allowed is \d+")
RETRIES = 3


class TritonError(BundleError):
    """The server is unreachable, lacks the model, or failed a request."""


@dataclass(frozen=True)
class TritonURL:
    """A parsed triton:// address."""

    protocol: str
    host: str
    port: int
    model: str
    version: str = ""

    @property
    def address(self) -> str:
        """'host:port' as tritonclient wants it."""
        return f"{self.host}:{self.port}"

    def __str__(self) -> str:
        scheme = "triton" if self.protocol == "http" else "triton+grpc"
        return f"{scheme}://{self.address}/{self.model}" + (f"/{self.version}" if self.version else "")


def is_triton_url(text: str | PathLike[str]) -> bool:
    """True when `text` names a served bundle (a scheme in SCHEMES), not a bundle directory.

    The one check for it: `load()` and the CLI ask this, and `parse_url` then validates the rest.
    """
    scheme, sep, _ = str(text).partition(":/")
    return scheme in SCHEMES and bool(sep)


def parse_url(url: str) -> TritonURL:
    """'triton://host:8000/model[/version]' -> TritonURL; anything malformed raises ConfigError."""
    text = str(url)
    if not is_triton_url(text):
        raise ConfigError(f"'{text}' is not a Triton URL; use triton://HOST:PORT/MODEL or triton+grpc://...")
    scheme, _, rest = text.partition(":/")
    parts = urlsplit(f"{scheme}://{rest.lstrip('/')}")  # pathlib.Path('triton://h/m') keeps one '/'
    path = [p for p in parts.path.split("/") if p]
    usage = f"'{text}': expected {scheme}://HOST[:PORT]/MODEL[/VERSION]"
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"{usage} (bad port)") from None
    if not parts.hostname or not 1 <= len(path) <= 2 or parts.query or parts.fragment:
        raise ConfigError(usage)
    version = path[1] if len(path) == 2 else ""
    if version and not version.isdigit():
        raise ConfigError(f"{usage} (version '{version}' must be a number)")
    protocol = SCHEMES[scheme]
    return TritonURL(protocol, parts.hostname, port or DEFAULT_PORTS[protocol], path[0], version)


def open_url(url: str, backend: str = "auto", timeout_s: float = 60.0) -> TritonEngine:
    """`load()` for triton:// URLs: the server picks its backend, so only backend='auto' is accepted."""
    parsed = parse_url(url)
    if backend != "auto":
        raise ConfigError(f"the server runs the model for {parsed}; drop --backend {backend} (use 'auto')")
    return TritonEngine(parsed, timeout_s)


class TritonEngine(Engine):
    """An Engine whose graph runs on a Triton server; pre/post-processing run in this process."""

    backend = "triton"

    def __init__(self, url: TritonURL, timeout_s: float = 60.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._local = threading.local()
        self._module = _client_module(url.protocol)
        client = self._client()
        where = f"model '{url.model}' at {url}"
        try:
            if not client.is_server_live():
                raise TritonError(f"Triton at {url.address} is not live yet; wait for it or check the server")
            if not client.is_model_ready(url.model, url.version):
                raise TritonError(f"{where} is not ready (not loaded, or no such model); check the name")
            config = client.get_model_config(url.model, url.version, **self._json_kwargs)
            server = client.get_server_metadata(**self._json_kwargs)
        except (OSError, self._module.InferenceServerException) as exc:
            raise TritonError(f"cannot reach Triton at {url.address} ({_reason(exc)}); is it up?") from None
        config = config.get("config", config)  # gRPC as_json wraps it
        self.meta = meta_from_config(config, where)
        self.max_batch = int(config.get("max_batch_size", 0))
        self.platform = config.get("platform") or config.get("backend", "?")
        self.server_version = server.get("version", "?")
        if self.max_batch < 1:
            raise TritonError(f"{where} has max_batch_size 0; simokit models are batched, re-export it")

    @property
    def _json_kwargs(self) -> dict[str, Any]:
        return {"as_json": True} if self.url.protocol == "grpc" else {}

    def _client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            if self.url.protocol == "http":
                t = self.timeout_s
                client = self._module.InferenceServerClient(
                    self.url.address, connection_timeout=t, network_timeout=t
                )
            else:
                client = self._module.InferenceServerClient(self.url.address)
            self._local.client = client
        return client

    def _run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        step = self.max_batch or len(x)
        parts = [self._infer(x[i : i + step]) for i in range(0, len(x), step)]
        if len(parts) == 1:
            return parts[0]
        return {t: np.concatenate([p[t] for p in parts]) for t in self.tasks}

    def _infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        m = self._module
        wire = _wire_type(triton_type(input_dtype(self.meta)))
        inp = m.InferInput(self.meta.input.name, list(x.shape), wire)
        kwargs: dict[str, Any] = {}
        if self.url.protocol == "http":
            inp.set_data_from_numpy(x, binary_data=True)
            kwargs["outputs"] = [m.InferRequestedOutput(t, binary_data=True) for t in self.tasks]
        else:
            inp.set_data_from_numpy(x)
            kwargs["outputs"] = [m.InferRequestedOutput(t) for t in self.tasks]
            kwargs["client_timeout"] = self.timeout_s
        for attempt in range(RETRIES + 1):
            try:
                result = self._client().infer(self.url.model, [inp], self.url.version, **kwargs)
                break
            except (OSError, m.InferenceServerException) as exc:
                if attempt < RETRIES and POISONED_BATCH.search(_reason(exc)):
                    continue
                raise TritonError(f"inference on {self.url} failed ({_reason(exc)})") from None
        return {t: result.as_numpy(t) for t in self.tasks}

    def close(self) -> None:
        """Close this thread's connection (others close when their thread's engine is collected)."""
        client = getattr(self._local, "client", None)
        if client is not None:
            client.close()
            self._local.client = None

    def describe(self) -> str:
        """Server, model, platform and protocol."""
        return (
            f"triton {self.url} ({self.url.protocol.upper()}, server {self.server_version}, "
            f"{self.platform}, max batch {self.max_batch})"
        )


def _wire_type(config_type: str) -> str:
    # Config types are TYPE_FP32 / TYPE_UINT8; the inference protocol spells them FP32 / UINT8.
    return config_type.removeprefix("TYPE_")


def _reason(exc: BaseException) -> str:
    text = exc.message() if hasattr(exc, "message") and callable(exc.message) else str(exc)
    return (text or type(exc).__name__).strip().splitlines()[0][:200]


def _client_module(protocol: str) -> Any:
    try:
        if protocol == "grpc":
            import tritonclient.grpc as module
        else:
            import tritonclient.http as module
    except ImportError:
        raise ConfigError(f"triton:// engines need tritonclient; {INSTALL_HINT}") from None
    return module

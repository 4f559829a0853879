"""The bundle contract, read on the robot: a directory with model.onnx and meta.json (no torch).

meta.json keys: format, tasks, input {name, kind, height, width, mean, std, dynamic_hw, io,
channels}, outputs
{task: {dtype, shape, kind}}, classes, palette, files {path: {bytes, sha256}} (see manifest.py;
sizes are checked whenever a bundle is read), and free-form provenance (merge recipe, fit
statistics, verification, source hashes, tool versions) that the runtime does not interpret.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

# Re-exported (`X as X`): every bundle reader imports BundleError and META_FILE from here.
from simokit.errors import BundleError as BundleError
from simokit.runtime.manifest import FILES_KEY, check_sizes
from simokit.runtime.manifest import META_FILE as META_FILE

BUNDLE_FORMAT = 1
MODEL_FILE = "model.onnx"
FP16_FILE = "model.fp16.onnx"
INT8_FILE = "model.int8.onnx"
# ONNX graph per precision for ONNX Runtime; written by `simokit build --fp16` and `simokit calib`
GRAPH_FILES = {"fp32": MODEL_FILE, "fp16": FP16_FILE, "int8-qdq": INT8_FILE}
HOW_TO_ADD = {"fp16": "simokit build --fp16", "int8-qdq": "simokit calib BUNDLE --data ..."}


class GraphIO(str, Enum):
    """What the graph's input and outputs are (meta.json input.io; absent in older bundles: MODEL)."""

    MODEL = "model"  # input at the model's size (uint8 NHWC or normalised float), outputs at model size
    FRAME = "frame"  # uint8 (B, H, W, 3) camera frames of any size; resizing and argmax inside the graph


# Name prefix of every node frame IO adds around the model (resize, argmax, upsampling): TensorRT's
# FP32 plan keeps them FP32 and calibration never quantises or calibrates them
FRAME_SCOPE = "frame/"


class Channels(str, Enum):
    """Channel order of a uint8 input (meta.json input.channels; absent: RGB)."""

    RGB = "rgb"
    BGR = "bgr"  # as OpenCV and most camera drivers deliver frames


@dataclass(frozen=True)
class InputSpec:
    """The graph's input: name, 'uint8' (B, H, W, 3) or 'float' (B, 3, H, W) normalised.

    height/width are the model's size; with io FRAME the graph takes frames of any size and
    resizes them to it itself.
    """

    name: str
    kind: str
    height: int
    width: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    dynamic_hw: bool = False  # the graph takes other sizes too (multiples of 14); height/width: default
    io: GraphIO = GraphIO.MODEL
    channels: Channels = Channels.RGB

    def to_dict(self) -> dict[str, Any]:
        """The meta.json form."""
        return {**vars(self), "io": self.io.value, "channels": self.channels.value}


@dataclass(frozen=True)
class BundleMeta:
    """What the runtime needs from meta.json, plus everything else under `extra`."""

    tasks: tuple[str, ...]
    input: InputSpec
    outputs: dict[str, dict[str, Any]]
    classes: tuple[str, ...] = ()
    palette: tuple[tuple[int, int, int], ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """Serialise to the meta.json text."""
        data = {
            "format": BUNDLE_FORMAT,
            "tasks": list(self.tasks),
            "input": self.input.to_dict(),
            "outputs": self.outputs,
            "classes": list(self.classes),
            "palette": [list(c) for c in self.palette],
            **self.extra,
        }
        return json.dumps(data, indent=1, default=list)


def read_meta(path: str | Path) -> BundleMeta:
    """Read `<bundle>/meta.json`; a missing or malformed file raises BundleError naming it."""
    root = Path(path)
    meta_path = root / META_FILE
    if not root.is_dir():
        raise BundleError(f"bundle not found: {root} is not a directory")
    if not meta_path.is_file():
        raise BundleError(f"{root}: incomplete bundle (needs {MODEL_FILE} and {META_FILE}); rebuild it")
    meta = parse_meta(meta_path.read_text(), str(meta_path))
    if not (root / MODEL_FILE).is_file() and not is_delta(meta):
        raise BundleError(f"{root}: incomplete bundle (needs {MODEL_FILE} and {META_FILE}); rebuild it")
    check_sizes(root, meta.extra.get(FILES_KEY))
    return meta


def require_graph(path: str | Path, command: str) -> None:
    """BundleError unless the bundle has a model.onnx of its own (delta bundles do not)."""
    if is_delta(read_meta(path)):
        raise BundleError(
            f"{path}: stored as one base graph plus per-domain weight deltas, so there is no single "
            f"{MODEL_FILE} for `simokit {command}`; run it with `simokit run` (or simokit.runtime.load), "
            "or rebuild with --set routing.delta=none"
        )


def disk_bytes(path: Path) -> int:
    """Bytes of a file, or of every file under a folder, hard-linked files counted once."""
    if path.is_file():
        return path.stat().st_size
    sizes = {f.stat().st_ino: f.stat().st_size for f in path.rglob("*") if f.is_file()}
    return sum(sizes.values())


def is_routed(path: str | Path) -> bool:
    """True when the bundle at `path` has a routing section (several domain engines and a router)."""
    return "routing" in read_meta(path).extra


def is_delta(meta: BundleMeta) -> bool:
    """True for bundles stored as base-graph deltas: a domain's (extra 'delta') or a routed one's."""
    return "delta" in meta.extra or meta.extra.get("routing", {}).get("weights") == "delta"


def parse_meta(text: str, where: str) -> BundleMeta:
    """meta.json text -> BundleMeta; malformed text raises BundleError naming `where`."""
    try:
        raw = json.loads(text)
        if raw.get("format") != BUNDLE_FORMAT:
            raise BundleError(
                f"{where}: bundle format {raw.get('format')} is not {BUNDLE_FORMAT}; rebuild it"
            )
        inp = raw.pop("input")
        spec = InputSpec(
            inp["name"],
            inp["kind"],
            int(inp["height"]),
            int(inp["width"]),
            tuple(inp["mean"]),
            tuple(inp["std"]),
            bool(inp.get("dynamic_hw", False)),
            _choice(GraphIO, inp.get("io", GraphIO.MODEL.value), where),
            _choice(Channels, inp.get("channels", Channels.RGB.value), where),
        )
        known = {"format", "tasks", "outputs", "classes", "palette"}
        return BundleMeta(
            tasks=tuple(raw["tasks"]),
            input=spec,
            outputs=raw["outputs"],
            classes=tuple(raw.get("classes", ())),
            palette=tuple(tuple(c) for c in raw.get("palette", ())),
            extra={k: v for k, v in raw.items() if k not in known},
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BundleError(f"{where}: malformed bundle metadata ({type(exc).__name__}: {exc})") from None


def _choice(enum: type[Enum], value: str, where: str) -> Any:
    try:
        return enum(value)
    except ValueError:
        valid = ", ".join(e.value for e in enum)
        raise BundleError(f"{where}: input {enum.__name__} '{value}' is not one of {valid}") from None

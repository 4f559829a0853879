"""simokit checkpoints: safetensors files holding an encoder, task heads and JSON metadata.

Layout: `encoder.*` tensors (official DINOv2 key names), `head.*` for a single-task expert or
`heads.<task>.*` for a merged multi-task model, and one metadata entry `simokit` with a JSON
`CheckpointMeta`. Foreign base encoders (official `.pth`, Hugging Face safetensors) are read
through `simokit.models.convert`, never unpickled.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from simokit import __version__
from simokit.cache import atomic_path
from simokit.errors import CheckpointError
from simokit.models.heads import DenseHead, HeadConfig, build_head
from simokit.models.multitask import MultiTaskModel
from simokit.models.vit import DinoVisionTransformer, VitConfig, build_encoder

META_KEY = "simokit"
KINDS = ("base", "expert", "merged")


@dataclass(frozen=True)
class CheckpointMeta:
    """What a checkpoint holds and where it came from; stored as JSON inside the file."""

    kind: str
    encoder: dict[str, Any]
    heads: dict[str, dict[str, Any]] = field(default_factory=dict)
    classes: tuple[str, ...] = ()
    input_size: tuple[int, int] = (224, 224)
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    base_hash: str = ""
    simokit_version: str = __version__
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tasks(self) -> tuple[str, ...]:
        """Task names in head order."""
        return tuple(self.heads)

    def to_json(self) -> str:
        """Serialise to JSON."""
        # Key order is kept: the order of `heads` is the task order of the model.
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str, where: str) -> CheckpointMeta:
        """Parse JSON written by `to_json`; malformed metadata raises CheckpointError naming `where`."""
        try:
            raw = json.loads(text)
            raw["classes"] = tuple(raw.get("classes", ()))
            raw["input_size"] = tuple(raw.get("input_size", (224, 224)))
            raw["mean"] = tuple(raw.get("mean", cls.mean))
            raw["std"] = tuple(raw.get("std", cls.std))
            meta = cls(**raw)
        except (json.JSONDecodeError, TypeError, KeyError) as exc:
            raise CheckpointError(f"{where}: malformed simokit metadata ({exc})") from None
        if meta.kind not in KINDS:
            raise CheckpointError(f"{where}: unknown checkpoint kind '{meta.kind}'")
        return meta


@dataclass
class Checkpoint:
    """A loaded checkpoint: metadata, encoder state dict and one state dict per task head."""

    path: Path
    meta: CheckpointMeta
    encoder: dict[str, Tensor]
    heads: dict[str, dict[str, Tensor]]


def state_hash(state: dict[str, Tensor]) -> str:
    """Return a SHA-256 over keys, dtypes, shapes and bytes of a state dict (order-independent)."""
    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_checkpoint(
    path: str | Path,
    meta: CheckpointMeta,
    encoder: dict[str, Tensor],
    heads: dict[str, dict[str, Tensor]] | None = None,
) -> Path:
    """Write a checkpoint atomically; an expert (one head) uses `head.*`, a merged model `heads.<task>.*`."""
    from safetensors.torch import save_file

    heads = heads or {}
    if set(heads) != set(meta.heads):
        raise CheckpointError(
            f"{path}: head tensors {sorted(heads)} differ from metadata {sorted(meta.heads)}"
        )
    tensors: dict[str, Tensor] = {f"encoder.{k}": v for k, v in encoder.items()}
    for task, sd in heads.items():
        prefix = "head." if meta.kind == "expert" else f"heads.{task}."
        tensors.update({prefix + k: v for k, v in sd.items()})
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    final = Path(path)
    with atomic_path(final) as tmp:
        save_file(tensors, str(tmp), metadata={META_KEY: meta.to_json()})
    return final


def is_simokit_checkpoint(path: Path) -> bool:
    """True for a .safetensors file carrying simokit's metadata entry (any other file: False)."""
    if path.suffix != ".safetensors" or not path.is_file():
        return False
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return META_KEY in (handle.metadata() or {})
    except Exception:  # a corrupt header: let the reader that follows report it in its own words
        return False


def read_checkpoint_meta(path: str | Path) -> CheckpointMeta:
    """A simokit checkpoint's metadata from the file's header alone (no tensor is read)."""
    from safetensors import safe_open

    p = Path(path)
    try:
        with safe_open(str(p), framework="pt") as f:
            raw_meta = (f.metadata() or {}).get(META_KEY)
    except Exception as exc:  # safetensors raises several private error types for damaged files
        raise CheckpointError(f"{p}: not a readable safetensors file ({type(exc).__name__}: {exc})") from None
    if raw_meta is None:
        raise CheckpointError(f"{p}: no simokit metadata; write it with `simokit train` or load it as a base")
    return CheckpointMeta.from_json(raw_meta, str(p))


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a simokit checkpoint; missing, corrupt or foreign files raise CheckpointError naming the file."""
    from safetensors import safe_open

    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint not found: {p}")
    meta = read_checkpoint_meta(p)
    try:
        with safe_open(str(p), framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
    except Exception as exc:  # safetensors raises several private error types for damaged files
        raise CheckpointError(f"{p}: not a readable safetensors file ({type(exc).__name__}: {exc})") from None
    encoder = {k[len("encoder.") :]: v for k, v in tensors.items() if k.startswith("encoder.")}
    heads: dict[str, dict[str, Tensor]] = {t: {} for t in meta.heads}
    for key, value in tensors.items():
        if key.startswith("head.") and meta.kind == "expert" and len(meta.heads) == 1:
            heads[next(iter(meta.heads))][key[len("head.") :]] = value
        elif key.startswith("heads."):
            task, _, rest = key[len("heads.") :].partition(".")
            if task not in heads:
                raise CheckpointError(f"{p}: tensor '{key}' belongs to task '{task}' missing from metadata")
            heads[task][rest] = value
    if not encoder:
        raise CheckpointError(f"{p}: holds no encoder.* tensors")
    return Checkpoint(p, meta, encoder, heads)


def _architecture(encoder: dict[str, Any]) -> dict[str, Any]:
    """The fields of an encoder config that decide its tensors and outputs.

    LayerScale's init value only seeds training, so sources that write 1e-5, 1.0 or nothing for the
    same trained weights still agree; whether LayerScale exists at all does matter. The position
    resampling rule (official 0.1 offset vs transformers' exact size) is not compared either.
    """
    arch = dict(encoder)
    arch["init_values"] = arch.get("init_values") is not None
    # how position embeddings are resampled is a rule, not a tensor: the merged encoder uses the base's
    for rule in ("interpolate_offset", "interpolate_antialias"):
        arch.pop(rule, None)
    return arch


def _describe(encoder: dict[str, Any]) -> str:
    """A short name for an encoder architecture, e.g. 'dim 384, 12 blocks, patch 14, 4 registers'."""
    return (
        f"dim {encoder.get('embed_dim')}, {encoder.get('depth')} blocks, patch {encoder.get('patch_size')}, "
        f"{encoder.get('num_register_tokens', 0)} registers"
    )


def check_compatible(experts: list[Checkpoint], base: Checkpoint | None = None) -> None:
    """Refuse experts that cannot be merged: other base, architecture, keys, shapes or dtypes.

    An expert whose base is unknown (imported from a format that does not record it, base_hash "")
    is checked on architecture, keys and shapes only.
    """
    if not experts:
        raise CheckpointError("no expert checkpoints given")
    ref = base or experts[0]
    ref_hash = ref.meta.base_hash if base is None else state_hash(base.encoder)
    for ck in experts:
        if ck.meta.kind != "expert":
            raise CheckpointError(f"{ck.path}: is a '{ck.meta.kind}' checkpoint, expected an expert")
        mine, theirs = _architecture(ck.meta.encoder), _architecture(ref.meta.encoder)
        if mine != theirs:
            diff = sorted(k for k in mine if mine.get(k) != theirs.get(k))
            raise CheckpointError(
                f"{ck.path} ({_describe(mine)}) and {ref.path} ({_describe(theirs)}) are different "
                f"encoders (they differ in {', '.join(diff)}); experts must share one base"
            )
        if ck.meta.base_hash and ref_hash and ck.meta.base_hash != ref_hash:
            raise CheckpointError(
                f"{ck.path}: fine-tuned from base {ck.meta.base_hash[:12]}, not {ref_hash[:12]} ({ref.path})"
            )
        _check_same_tensors(ck, ref)


def _check_same_tensors(ck: Checkpoint, ref: Checkpoint) -> None:
    missing = sorted(set(ref.encoder) - set(ck.encoder))
    extra = sorted(set(ck.encoder) - set(ref.encoder))
    if missing or extra:
        what = f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}"
        raise CheckpointError(f"{ck.path}: encoder keys differ from {ref.path}: {what}")
    for key, tensor in ck.encoder.items():
        other = ref.encoder[key]
        if tensor.shape != other.shape or tensor.dtype != other.dtype:
            raise CheckpointError(
                f"{ck.path}: encoder.{key} is {tuple(tensor.shape)} {tensor.dtype}, "
                f"{ref.path} has {tuple(other.shape)} {other.dtype}"
            )


def encoder_from_checkpoint(ck: Checkpoint) -> DinoVisionTransformer:
    """The checkpoint's encoder as a module in eval mode (strict key match)."""
    encoder = build_encoder(VitConfig.from_dict(ck.meta.encoder))
    encoder.load_state_dict(ck.encoder, strict=True)
    return encoder.eval()


def heads_from_checkpoint(ck: Checkpoint, embed_dim: int) -> dict[str, DenseHead]:
    """Every head of the checkpoint as a module in eval mode, keyed by task."""
    heads: dict[str, DenseHead] = {}
    for task, hdict in ck.meta.heads.items():
        head = build_head(HeadConfig.from_dict(hdict), embed_dim)
        head.load_state_dict(ck.heads[task], strict=True)
        heads[task] = head.eval()
    return heads


def model_from_checkpoint(ck: Checkpoint) -> MultiTaskModel:
    """Encoder and every head of the checkpoint as one MultiTaskModel in eval mode."""
    encoder = encoder_from_checkpoint(ck)
    return MultiTaskModel(encoder, heads_from_checkpoint(ck, encoder.embed_dim)).eval()

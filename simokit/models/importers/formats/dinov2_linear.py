"""The DINOv2 linear head family in its source layout (official dense heads and SIMO), as simokit heads.

Segmentation and normals: BatchNorm over the concatenated blocks, then a 1x1 conv (`bn.*` and
`conv_seg.*` / `conv_normal.*`), which is simokit's `linear` kind with batch_norm. Depth: a 1x1 conv
(`conv_depth.*`, no BatchNorm) over [patch, CLS] upsampled 4x, then bins or regression to metres:
the `linear_depth` kind. Shared by the `dinov2_heads` and `simo` formats.
"""

from __future__ import annotations

import torch
from torch import Tensor

from simokit.errors import CheckpointError, ConfigError
from simokit.models.heads import HeadConfig, build_head

_BN_KEYS = ("weight", "bias", "running_mean", "running_var")
DEPTH_UPSAMPLE = 4  # both sources upsample the concatenated features 4x before the depth conv


def class_names(count: int) -> tuple[str, ...]:
    """Placeholder class names for a source that records only the class count."""
    return tuple(f"class_{i}" for i in range(count))


def check_blocks(layers: tuple[int, ...], depth: int, where: str) -> None:
    """Refuse a head that reads blocks the encoder lacks (the source indexes blocks from 0)."""
    missing = [i for i in layers if not 0 <= i < depth]
    if missing:
        raise CheckpointError(
            f"{where}: the head reads block(s) {missing} but the encoder has {depth} blocks (0..{depth - 1})"
        )


def _need(state: dict[str, Tensor], key: str, where: str) -> Tensor:
    if key not in state:
        raise CheckpointError(f"{where}: head lacks '{key}' (found {', '.join(sorted(state)[:6])})")
    return state[key]


def _check_width(weight: Tensor, dim: int, blocks: int, use_cls: bool, where: str) -> None:
    parts = 2 if use_cls else 1
    if weight.dim() != 4 or weight.shape[1] != dim * parts * blocks:
        cls = " with CLS" if use_cls else ""
        raise CheckpointError(
            f"{where}: the head's conv reads {weight.shape[1] if weight.dim() > 1 else '?'} channels, but "
            f"{blocks} block(s) of a {dim}-wide encoder{cls} give {dim * parts * blocks}"
        )


def _checked(cfg: HeadConfig, state: dict[str, Tensor], dim: int, where: str) -> dict[str, Tensor]:
    """The head state, after making sure it loads strictly into the simokit head it describes."""
    try:
        build_head(cfg, dim).load_state_dict(state, strict=True)
    except (RuntimeError, ConfigError) as err:
        first = str(err).strip().splitlines()[0][:200]
        raise CheckpointError(f"{where}: the head does not fit a '{cfg.kind}' head ({first})") from None
    return state


def bn_conv_head(
    state: dict[str, Tensor],
    conv: str,
    layers: tuple[int, ...],
    use_cls: bool,
    norm: bool,
    dim: int,
    where: str,
) -> tuple[HeadConfig, dict[str, Tensor]]:
    """A BatchNorm + 1x1 conv head (`bn.*`, `<conv>.*`) as a `linear` head with raw outputs."""
    weight = _need(state, f"{conv}.weight", where)
    _check_width(weight, dim, len(layers), use_cls, where)
    cfg = HeadConfig(
        "linear", int(weight.shape[0]), "none", layers=layers, use_cls=use_cls, batch_norm=True, norm=norm
    )
    head_state = {f"bn.{k}": _need(state, f"bn.{k}", where) for k in _BN_KEYS}
    head_state["bn.num_batches_tracked"] = state.get("bn.num_batches_tracked", torch.tensor(0))
    head_state["conv.weight"] = weight
    head_state["conv.bias"] = _need(state, f"{conv}.bias", where)
    return cfg, _checked(cfg, head_state, dim, where)


def depth_head(
    state: dict[str, Tensor],
    layers: tuple[int, ...],
    use_cls: bool,
    depth_range: tuple[float, float],
    clamp: bool,
    dim: int,
    where: str,
) -> tuple[HeadConfig, dict[str, Tensor]]:
    """A `conv_depth` head as `linear_depth`: 256 outputs are uniform bins, 1 output is ReLU regression."""
    weight = _need(state, "conv_depth.weight", where)
    _check_width(weight, dim, len(layers), use_cls, where)
    bins = int(weight.shape[0])
    options = {
        "min_depth": float(depth_range[0]),
        "max_depth": float(depth_range[1]),
        "bins": 0 if bins == 1 else bins,
        "upsample": DEPTH_UPSAMPLE,
        "clamp": clamp,
    }
    cfg = HeadConfig(
        "linear_depth",
        1,
        "none",
        layers=layers,
        use_cls=use_cls,
        batch_norm=False,
        norm=False,
        options=options,
    )
    head_state = {"conv.weight": weight, "conv.bias": _need(state, "conv_depth.bias", where)}
    return cfg, _checked(cfg, head_state, dim, where)


def depth_output(cfg: HeadConfig) -> str:
    """How a linear_depth head makes metres, for `simokit inspect`."""
    opt = cfg.options
    if opt.get("bins"):
        return (
            f"metres: {opt['bins']} uniform bins {opt['min_depth']:g}..{opt['max_depth']:g} m (linear norm)"
        )
    return f"metres: ReLU + {opt['min_depth']:g} m"

"""Depth Anything V1 and V2 checkpoints from their official repositories.

Layout: `pretrained.*` (a DINOv2 encoder, official names) and `depth_head.*` (the DPT head), at the top
level, inside a V1 hub folder (config.json with `encoder`), or as a fine-tuning checkpoint
`{"model": {"module.pretrained.*", "module.depth_head.*"}, "optimizer": ...}`. V1 and V2 files hold
the same keys and shapes, and so do relative and metric ones: the version, the output and the metric
range come from the file name (`depth_anything_vits14` is V1, `depth_anything_v2_metric_vkitti_vitl`
is V2 metric outdoor) and `details` says what was assumed; the forced formats override it.
"""

from __future__ import annotations

import re
from typing import Any

from torch import Tensor

from simokit.errors import CheckpointError
from simokit.models.heads import HeadConfig, build_head
from simokit.models.importers.infer import infer_vit_config, official_encoder
from simokit.models.importers.model import ImportedModel
from simokit.models.importers.registry import register
from simokit.models.importers.source import Source

_PROBE = "depth_head.projects.0.weight"
_PREFIXES = ("", "module.", "model.", "model.module.", "state_dict.", "state_dict.module.")
# V2 reads these blocks per encoder width (vits, vitb, vitl, vitg); V1 reads the last four blocks
_V2_LAYERS = {384: (2, 5, 8, 11), 768: (2, 5, 8, 11), 1024: (4, 11, 17, 23), 1536: (9, 19, 29, 39)}
METRIC_MAX_DEPTH = {"indoor": 20.0, "outdoor": 80.0}  # Hypersim and Virtual KITTI models, metres
INPUT_SIZE = (518, 518)
_V1_NAME = re.compile(r"depth_anything_vit[sblg]14")  # the V1 release names; V2 ones say v2
_ENCODERS = {384: "vits", 768: "vitb", 1024: "vitl", 1536: "vitg"}


def encoder_name(embed_dim: int) -> str:
    """Depth Anything's name of an encoder width ("custom (D)" for others)."""
    return _ENCODERS.get(embed_dim, f"custom ({embed_dim})")


def v2_layers(embed_dim: int, depth: int) -> tuple[int, ...]:
    """The blocks V2 reads: its table for the official widths, else four spread evenly, the last one last."""
    table = _V2_LAYERS.get(embed_dim)
    if table is not None and table[-1] == depth - 1:
        return table
    return tuple(depth * (k + 1) // 4 - 1 for k in range(4))


def da_head_config(
    head: dict[str, Tensor], layers: tuple[int, ...], version: str, output: str, max_depth: float, **kw: Any
) -> HeadConfig:
    """The da_dpt HeadConfig whose head has exactly the shapes of `head` (official `depth_head.` names)."""
    try:
        widths = [int(head[f"projects.{i}.weight"].shape[0]) for i in range(4)]
        features = int(head["scratch.layer1_rn.weight"].shape[0])
        hidden = int(head["scratch.output_conv2.0.weight"].shape[0])
    except KeyError as err:
        raise CheckpointError(f"Depth Anything head lacks {err}; the checkpoint is incomplete") from None
    options = {
        "widths": widths,
        "use_bn": "scratch.refinenet1.resConfUnit1.bn1.weight" in head,
        "version": version,
        "output": output,
        "max_depth": float(max_depth),
        "hidden": hidden,
        **kw,
    }
    use_cls = "readout_projects.0.0.weight" in head
    return HeadConfig("da_dpt", 1, "none", layers, use_cls, dpt_features=features, norm=True, options=options)


def check_head_state(cfg: HeadConfig, embed_dim: int, state: dict[str, Tensor], where: str) -> None:
    """Refuse a head state that does not load strictly into the head `cfg` describes (one line)."""
    missing, unexpected = build_head(cfg, embed_dim).load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{where}: Depth Anything head keys do not fit its shapes (missing {sorted(missing)[:4]}, "
            f"unexpected {sorted(unexpected)[:4]})"
        )


def _prefix(source: Source) -> str | None:
    for prefix in _PREFIXES:
        if prefix + _PROBE in source.tensors and prefix + "pretrained.cls_token" in source.tensors:
            return prefix
    return None


class DepthAnythingImporter:
    """Official Depth Anything files; `version`/`metric`/`max_depth` left None are read from the file."""

    def __init__(
        self,
        name: str,
        description: str,
        version: str | None = None,
        metric: bool | None = None,
        max_depth: float | None = None,
    ) -> None:
        self.name = name
        self.description = description
        self.version, self.metric, self.max_depth = version, metric, max_depth

    def detect(self, source: Source) -> bool:
        """`pretrained.*` and `depth_head.*` keys (the forced variants are only chosen by name)."""
        return self.version is None and self.metric is None and _prefix(source) is not None

    def _guess(self, source: Source) -> tuple[str, bool, float, str]:
        """Version, metric or not, max depth, and what was assumed to find them."""
        name = source.path.name.lower()
        config = source.config or {}
        if config:
            name = f"{source.path.parent.name.lower()}/{name}"
        trainer = isinstance(source.top, dict) and "optimizer" in source.top and "model" in source.top
        notes = []
        metric = self.metric
        if metric is None:
            metric = "metric" in name or trainer
        version = self.version
        if version is None:
            if "v2" in name or metric:
                version = "v2"
            elif ("encoder" in config and "model_type" not in config) or _V1_NAME.search(name):
                version = "v1"
            else:
                version = "v2"
                notes.append("V2 assumed (V1 files hold the same keys)")
        max_depth = self.max_depth
        if max_depth is None and metric:
            outdoor = any(word in name for word in ("kitti", "outdoor"))  # vkitti too
            max_depth = METRIC_MAX_DEPTH["outdoor" if outdoor else "indoor"]
            if not outdoor and not any(word in name for word in ("hypersim", "indoor")):
                notes.append(f"max_depth {max_depth} m (indoor) assumed")
        return version, bool(metric), float(max_depth or 1.0), "; ".join(notes)

    def convert(self, source: Source) -> list[ImportedModel]:
        """One depth expert: relative (task relative_depth) or metric (task depth)."""
        prefix = _prefix(source)
        if prefix is None:
            raise CheckpointError(f"{source.path}: no 'pretrained.*' encoder with 'depth_head.*' head found")
        encoder = official_encoder(source.state_dict(prefix + "pretrained."))
        vit = infer_vit_config(encoder)
        head_state = source.state_dict(prefix + "depth_head.")
        version, metric, max_depth, assumed = self._guess(source)
        if version == "v1" and metric:
            raise CheckpointError(
                f"{source.path}: Depth Anything V1 metric models (ZoeDepth) are not supported"
            )
        depth = vit.depth
        layers = tuple(range(depth - 4, depth)) if version == "v1" else v2_layers(vit.embed_dim, depth)
        output = "sigmoid" if metric else "relu"
        head = da_head_config(head_state, layers, version, output, max_depth, patch_size=vit.patch_size)
        check_head_state(head, vit.embed_dim, head_state, str(source.path))
        details = {
            "variant": encoder_name(vit.embed_dim),
            "registers": vit.num_register_tokens,
            "head": f"da_dpt (Depth Anything {version.upper()})",
            "blocks": list(layers),
            "norm": True,
            "cls_readout": head.use_cls,
            "output": f"sigmoid x {max_depth:g} m" if metric else "relu (affine-invariant inverse depth)",
            "max_depth": max_depth if metric else None,
            "assumed": assumed or "nothing",
        }
        task = "depth" if metric else "relative_depth"
        return [
            ImportedModel(
                self.name, vit, encoder, task, head, head_state, input_size=INPUT_SIZE, details=details
            )
        ]


register(DepthAnythingImporter("depth_anything", "Depth Anything V1/V2 (pretrained.* + depth_head.*)"))
register(DepthAnythingImporter("depth_anything_v1", "Depth Anything V1 relative (forced)", "v1", False))
register(DepthAnythingImporter("depth_anything_v2", "Depth Anything V2 relative (forced)", "v2", False))
register(
    DepthAnythingImporter(
        "depth_anything_v2_indoor",
        "Depth Anything V2 metric, 20 m (forced)",
        "v2",
        True,
        METRIC_MAX_DEPTH["indoor"],
    )
)
register(
    DepthAnythingImporter(
        "depth_anything_v2_outdoor",
        "Depth Anything V2 metric, 80 m (forced)",
        "v2",
        True,
        METRIC_MAX_DEPTH["outdoor"],
    )
)

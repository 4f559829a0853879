"""Tiny given experts (simokit checkpoints, random weights) and frames in a folder, a video and a bag."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from simokit.data import CLASS_NAMES
from simokit.models import HeadConfig, build_encoder, build_head
from simokit.models.checkpoint import CheckpointMeta, save_checkpoint, state_hash

HEADS = {
    "seg": HeadConfig("linear", len(CLASS_NAMES), "none"),
    "depth": HeadConfig("linear", 1, "exp"),
    "normal": HeadConfig("linear", 3, "normalize"),
}


def write_experts(folder: Path, seed: int = 0) -> tuple[Path, list[Path]]:
    """A vitnano14 base and three experts (base + noise, one random linear head each)."""
    torch.manual_seed(seed)
    base = build_encoder("vitnano14")
    state = base.state_dict()
    arch = base.config.to_dict()
    meta = CheckpointMeta(kind="base", encoder=arch, classes=CLASS_NAMES, input_size=(56, 56))
    base_path = save_checkpoint(folder / "base.safetensors", meta, state)
    experts = []
    for task, cfg in HEADS.items():
        sd = {k: v + 0.05 * torch.randn_like(v) if v.is_floating_point() else v for k, v in state.items()}
        head = build_head(cfg, arch["embed_dim"])
        meta = CheckpointMeta(
            kind="expert",
            encoder=arch,
            heads={task: cfg.to_dict()},
            classes=CLASS_NAMES,
            input_size=(56, 56),
            base_hash=state_hash(state),
        )
        experts.append(save_checkpoint(folder / f"{task}.safetensors", meta, sd, {task: head.state_dict()}))
    return base_path, experts


def frames(n: int = 8, h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    """`n` smooth random BGR frames (blurred noise, so codecs keep them close)."""
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, (n, h // 8, w // 8, 3), dtype=np.uint8)
    return np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_LINEAR) for f in raw])


def write_folder(folder: Path, bgr: np.ndarray) -> Path:
    """PNG files in a nested folder (the reader recurses), named in frame order."""
    (folder / "cam" / "a").mkdir(parents=True)
    for i, f in enumerate(bgr):
        cv2.imwrite(str(folder / "cam" / "a" / f"{i:03d}.png"), f)
    return folder


def write_avi(path: Path, bgr: np.ndarray) -> Path:
    """An MJPG .avi video of the frames."""
    h, w = bgr.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (w, h))
    for f in bgr:
        writer.write(f)
    writer.release()
    return path


def write_mcap(path: Path, bgr: np.ndarray, topic: str = "/camera/image_raw") -> Path:
    """A ROS 2 bag with the frames as bgr8 sensor_msgs/Image on `topic`, written with mcap-ros2-support."""
    from runtime.ros_helpers import write_bag

    from simokit.runtime.ros.convert import image_msg
    from simokit.runtime.ros.header import FrameHeader
    from simokit.runtime.ros.msgdefs import IMAGE

    messages = []
    for i, f in enumerate(bgr):
        t = 1_700_000_000 * 10**9 + i * 100_000_000
        header = FrameHeader(t // 10**9, t % 10**9, "cam").to_msg()
        messages.append((topic, IMAGE, image_msg(f, "bgr8", {}) | {"header": header}, t))
    return write_bag(path, messages)


def write_nyu(root: Path, h: int, w: int, n: int = 4) -> Path:
    """An NYUv2-layout folder (train/ and test/) of random images and labels at h x w."""
    rng = np.random.default_rng(3)
    for split in ("train", "test"):
        for i in range(n):
            normal = rng.normal(0, 1, (h, w, 3)).astype(np.float32)
            arrays = {
                "image": rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
                "label": rng.integers(0, len(CLASS_NAMES), (h, w)).astype(np.uint8),
                "depth": rng.uniform(0.5, 10.0, (h, w)).astype(np.float32),
                "normal": normal / np.linalg.norm(normal, axis=-1, keepdims=True),
            }
            for name, value in arrays.items():
                (root / split / name).mkdir(parents=True, exist_ok=True)
                np.save(root / split / name / f"{i}.npy", value)
    return root

"""Tests for tensor conversion and flip augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from simokit.data.scenes import generate
from simokit.data.transforms import IMAGENET_MEAN, IMAGENET_STD, hflip, targets_to_tensors, to_tensor_batch
from simokit.errors import ShapeError


def test_to_tensor_batch_normalises() -> None:
    images = np.zeros((2, 4, 5, 3), dtype=np.uint8)
    images[1] = 255
    x = to_tensor_batch(images)
    assert x.shape == (2, 3, 4, 5) and x.dtype == torch.float32
    for c in range(3):
        assert x[0, c, 0, 0].item() == pytest.approx(-IMAGENET_MEAN[c] / IMAGENET_STD[c], rel=1e-6)
        assert x[1, c, 0, 0].item() == pytest.approx((1 - IMAGENET_MEAN[c]) / IMAGENET_STD[c], rel=1e-6)
    with pytest.raises(ShapeError):
        to_tensor_batch(np.zeros((4, 5, 3), dtype=np.uint8))
    with pytest.raises(ShapeError):
        to_tensor_batch(np.zeros((1, 4, 5, 3), dtype=np.float32))


def test_targets_to_tensors_shapes() -> None:
    data = generate(2, 28, workers=1, progress=False)
    t = targets_to_tensors(data.batch([0, 1]))
    assert set(t) == {"seg", "depth", "normal", "edge", "shading", "relative_depth"}
    assert t["seg"].shape == (2, 28, 28) and t["seg"].dtype == torch.long
    assert t["normal"].shape == (2, 3, 28, 28) and t["normal"].dtype == torch.float32
    for key in ("depth", "edge", "shading", "relative_depth"):
        assert t[key].shape == (2, 1, 28, 28)
    assert data.normal is not None
    np.testing.assert_array_equal(t["normal"][1, :, 3, 4].numpy(), data.normal[1, 3, 4])
    with pytest.raises(ShapeError):
        targets_to_tensors({"normal": np.zeros((2, 28, 28))})


def test_hflip_mirrors_everything_and_negates_normal_x() -> None:
    data = generate(2, 28, workers=1, progress=False)
    batch = {"image": to_tensor_batch(data.image), **targets_to_tensors(data.batch([0, 1]))}
    batch["domain"] = torch.as_tensor(data.domain)
    flipped = hflip(batch)
    assert torch.equal(flipped["image"], batch["image"].flip(-1))
    assert torch.equal(flipped["seg"], batch["seg"].flip(-1))
    assert torch.equal(flipped["depth"], batch["depth"].flip(-1))
    assert torch.equal(flipped["normal"][:, 0], -batch["normal"][:, 0].flip(-1))
    assert torch.equal(flipped["normal"][:, 1:], batch["normal"][:, 1:].flip(-1))
    assert torch.equal(flipped["domain"], batch["domain"])
    twice = hflip(flipped)
    for key, value in batch.items():
        assert torch.equal(twice[key], value)
    partial = hflip(batch, which=torch.tensor([True, False]))
    assert torch.equal(partial["normal"][0], flipped["normal"][0])
    assert torch.equal(partial["normal"][1], batch["normal"][1])


def test_hflip_images_targets_form() -> None:
    images = torch.arange(2 * 3 * 2 * 4, dtype=torch.float32).view(2, 3, 2, 4)
    normal = torch.ones(2, 3, 2, 4)
    seg = torch.arange(16).view(2, 2, 4)
    out_images, out_targets = hflip(images, {"normal": normal, "seg": seg})
    assert torch.equal(out_images, images.flip(-1))
    assert torch.equal(out_targets["seg"], seg.flip(-1))
    assert set(out_targets) == {"normal", "seg"}
    assert torch.all(out_targets["normal"][:, 0] == -1) and torch.all(out_targets["normal"][:, 1:] == 1)

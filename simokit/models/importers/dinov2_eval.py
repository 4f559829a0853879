"""What DINOv2's official dense evaluation fixed, shared by its linear and DPT head files."""

from __future__ import annotations

# the depth range each dataset's heads were trained for: (min, max) metres; the depthers clamp to it
DEPTH_RANGES = {"nyu": (0.001, 10.0), "kitti": (0.001, 80.0)}
# the four blocks the multi-block heads read, by encoder depth (ViT-S/B, ViT-L, ViT-g)
FOUR_BLOCKS = {12: (2, 5, 8, 11), 24: (4, 11, 17, 23), 40: (9, 19, 29, 39)}
# the official encoders' depth by width, for head files met without their backbone
OFFICIAL_DEPTH = {384: 12, 768: 12, 1024: 24, 1536: 40}

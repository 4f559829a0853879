"""simokit: merge DINOv2-style task experts into one re-aligned, deployable multi-output engine."""

__version__ = "0.1.0"

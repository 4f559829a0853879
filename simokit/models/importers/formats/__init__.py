"""One module per checkpoint format; importing this package registers them all, in detection order.

Order matters where layouts overlap: specific formats (a SIMO file, a Depth Anything model) come
before the general ones (a bare DINOv2 backbone) that would also accept their encoder keys.
"""

from __future__ import annotations

from simokit.models.importers.formats import dinov2_dpt, hf_dpt  # noqa: F401

# isort: split
# the bare backbones last: every expert format also holds an encoder they would accept
from simokit.models.importers.formats import backbones  # noqa: F401

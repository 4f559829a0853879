"""One module per checkpoint format; importing this package registers them all, in detection order.

Order matters where layouts overlap: specific formats (a SIMO file, a Depth Anything model) come
before the general ones (a bare DINOv2 backbone) that would also accept their encoder keys. Format
modules do not import one another: an import registers that format, which would change the order.
"""

from __future__ import annotations

# isort: off
from simokit.models.importers.formats import (
    depth_anything,  # noqa: F401
    dinov2_dpt,  # noqa: F401
    dinov2_heads,  # noqa: F401
    hf_depth_anything,  # noqa: F401
    hf_dinov2_seg,  # noqa: F401
    hf_dpt,  # noqa: F401
    simo,  # noqa: F401
    timm_dinov2,  # noqa: F401
)

# the bare backbones last: every expert format also holds an encoder they would accept
from simokit.models.importers.formats import backbones  # noqa: F401
# isort: on

"""The registry of checkpoint formats; importing this package registers every format.

Detection tries the formats in ascending ``priority`` (most specific layouts first).
"""

from vitprobe.models.formats import dino, model_entry, mocov3, timm_state, vitprobe_own  # noqa: F401
from vitprobe.models.formats.base import (BUFFER_DROPS, ArchHints, CheckpointFormat, Extracted,
                                          formats)

__all__ = ["ArchHints", "BUFFER_DROPS", "CheckpointFormat", "Extracted", "formats"]

"""The registry of checkpoint formats; importing this package registers every format.

Detection tries the formats in the order they are imported below (most specific first).
"""

from vitprobe.models.formats import vitprobe_own, dino, mocov3, model_entry, timm_state  # noqa: F401
from vitprobe.models.formats.base import (ArchHints, CheckpointFormat, Extracted, formats,
                                          BUFFER_DROPS)

__all__ = ["ArchHints", "BUFFER_DROPS", "CheckpointFormat", "Extracted", "formats"]

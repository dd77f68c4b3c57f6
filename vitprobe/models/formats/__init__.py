"""The registry of checkpoint formats; importing this package registers every format.

Detection tries the formats in ascending ``priority`` (most specific layouts first).
"""

from vitprobe.models.formats.base import (BUFFER_DROPS, ArchHints, CheckpointFormat, Extracted,
                                          formats, key_choices, register_format)
from vitprobe.plugins import import_all

import_all(__name__, __path__)  # each format module registers its classes

__all__ = ["ArchHints", "BUFFER_DROPS", "CheckpointFormat", "Extracted", "formats", "key_choices",
           "register_format"]

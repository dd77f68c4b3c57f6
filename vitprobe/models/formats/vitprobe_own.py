"""vitprobe's own ``.safetensors`` checkpoints: timm keys plus a JSON architecture header."""

from __future__ import annotations

from vitprobe.errors import CheckpointError
from vitprobe.models.formats.base import (ArchHints, CheckpointFormat, Extracted, register_format,
                                          tensor_dict)
from vitprobe.models.own_format import METADATA_KEY, parse_header
from vitprobe.models.reading import RawCheckpoint, parse_json_metadata


@register_format
class VitprobeFormat(CheckpointFormat):
    name = "vitprobe"
    priority = 0
    summary = "vitprobe's own .safetensors: timm encoder keys, exact architecture in the header"

    def detect(self, raw: RawCheckpoint) -> bool:
        return raw.container == "safetensors" and METADATA_KEY in raw.metadata

    def extract(self, raw: RawCheckpoint, key: str | None) -> Extracted:
        self.choose_key(raw, key)
        if METADATA_KEY not in raw.metadata:
            raise CheckpointError(f"checkpoint {raw.path} has no vitprobe header, so it is not a "
                                  "vitprobe checkpoint; omit --format or pass --format timm")
        header = parse_json_metadata(raw.path, raw.metadata[METADATA_KEY], "vitprobe")
        spec, meta = parse_header(raw.path, header)
        return Extracted(tensor_dict(raw, raw.obj, "the file"), {},
                         ArchHints(spec=spec, info={"training": meta}))

"""Plain state dicts with timm key names: DINO backbone releases, timm ``.pth``/``.safetensors``."""

from __future__ import annotations

from collections.abc import Mapping

from vitprobe.models.formats.base import (ArchHints, CheckpointFormat, Extracted, register_format,
                                          tensor_dict)
from vitprobe.models.reading import RawCheckpoint


@register_format
class TimmStateDict(CheckpointFormat):
    name = "timm"
    priority = 90
    summary = ("plain state dict with timm keys (DINO backbone release, timm .pth or "
               ".safetensors, ViT or BEiT layout)")

    def detect(self, raw: RawCheckpoint) -> bool:
        return isinstance(raw.obj, Mapping) and "patch_embed.proj.weight" in raw.obj

    def extract(self, raw: RawCheckpoint, key: str | None) -> Extracted:
        self.choose_key(raw, key)
        return Extracted(tensor_dict(raw, raw.obj, "the file"), {}, ArchHints())

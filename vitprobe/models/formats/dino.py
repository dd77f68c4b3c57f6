"""DINO full training checkpoints (facebookresearch/dino ``main_dino.py``).

The file holds ``student`` (DDP-wrapped: ``module.backbone.*``, ``module.head.*``),
``teacher`` (``backbone.*``, ``head.*``), ``optimizer``, ``epoch``, ``args`` (an argparse
Namespace with ``arch`` and ``patch_size``), ``dino_loss`` (the centre) and maybe
``fp16_scaler``. The DINO head (MLP + weight-normalised prototypes) is dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vitprobe.models.formats.base import (ArchHints, CheckpointFormat, Extracted, entry,
                                          has_prefixed_keys, named_arch, register_format, split_drops,
                                          strip_prefix, tensor_dict)
from vitprobe.models.reading import RawCheckpoint

DINO_ARCHS: dict[str, tuple[int, int]] = {"vit_tiny": (192, 3), "vit_small": (384, 6),
                                          "vit_base": (768, 12)}
"""DINO's ``args.arch`` -> (width, heads) of its vision_transformer.py."""


def dino_hints(args: Any) -> ArchHints:
    """Heads and patch size from DINO's pickled ``args`` Namespace (absent fields give none)."""
    arch = getattr(args, "arch", None)
    patch = getattr(args, "patch_size", None)
    width, heads = named_arch(arch, DINO_ARCHS)
    return ArchHints(num_heads=heads, width=width, heads_source=f"DINO args.arch {arch!r}",
                     patch_size=patch if isinstance(patch, int) else None,
                     info={"args.arch": arch} if isinstance(arch, str) else {})


@register_format
class DinoTraining(CheckpointFormat):
    name = "dino"
    priority = 10
    summary = "DINO training checkpoint: teacher (default) or student, args Namespace"
    drops = {"head.*": "DINO projection head and prototypes (training only)"}
    keys = ("teacher", "student")

    def detect(self, raw: RawCheckpoint) -> bool:
        obj = raw.obj
        return isinstance(obj, Mapping) and any(
            has_prefixed_keys(obj.get(k), "backbone.", "module.backbone.") for k in self.keys)

    def extract(self, raw: RawCheckpoint, key: str | None) -> Extracted:
        key = self.choose_key(raw, key)
        sd = tensor_dict(raw, entry(raw, key), f"entry {key!r}")
        sd = strip_prefix(strip_prefix(sd, "module."), "backbone.")
        kept, dropped = split_drops(sd, self.drops)
        args = raw.obj.get("args")
        return Extracted(kept, dropped, dino_hints(args), key,
                         sorted(str(k) for k in raw.obj if k != key))

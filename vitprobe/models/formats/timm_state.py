"""State dicts with timm key names: bare ones, and timm's own training checkpoints.

- A bare state dict: DINO's backbone releases, timm ``.pth``/``.safetensors`` files, and
  ``torch.save(model.state_dict())`` of a DistributedDataParallel model (``module.*`` keys).
- timm ``train.py`` checkpoints (``timm.utils.CheckpointSaver``): ``state_dict`` (the default)
  and, when trained with ``--model-ema``, ``state_dict_ema``, both of the unwrapped model;
  ``arch`` (``args.model``, a timm model name), ``args``, ``optimizer``, ``epoch``, ``version``,
  ``metric``, ``saver`` and the AMP scaler's state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import timm
import torch
from timm.models.beit import Beit
from timm.models.vision_transformer import VisionTransformer

from vitprobe.errors import CheckpointError
from vitprobe.models.formats.base import (ArchHints, CheckpointFormat, Extracted, register_format,
                                          strip_prefix, tensor_dict)
from vitprobe.models.reading import RawCheckpoint

_PATCH_KEY = "patch_embed.proj.weight"


def _holds_encoder(obj: Any) -> bool:
    """Whether ``obj`` is a state dict with a ViT/BEiT patch embedding (DDP-prefixed or not)."""
    return isinstance(obj, Mapping) and (_PATCH_KEY in obj or f"module.{_PATCH_KEY}" in obj)


def timm_name_hints(name: Any) -> ArchHints:
    """Width, heads, depth and patch size of timm model ``name``, read off the model built on
    the meta device (no weights are made); no hints for a name timm lacks or a non-ViT model."""
    info = {"arch": name} if isinstance(name, str) else {}
    if not isinstance(name, str) or not timm.is_model(name):
        return ArchHints(info=info)
    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False)
    if not isinstance(model, (VisionTransformer, Beit)):
        return ArchHints(info=info)
    return ArchHints(num_heads=model.blocks[0].attn.num_heads, heads_source=f"timm model arch {name!r}",
                     width=model.embed_dim, depth=len(model.blocks),
                     patch_size=model.patch_embed.patch_size[0], info=info)


@register_format
class TimmStateDict(CheckpointFormat):
    name = "timm"
    priority = 90
    summary = ("timm keys: a bare state dict (DINO backbone release, timm .pth or .safetensors, "
               "module.* of DDP; ViT or BEiT layout), or timm train.py's state_dict (default) / state_dict_ema")
    keys = ("state_dict", "state_dict_ema")

    def detect(self, raw: RawCheckpoint) -> bool:
        return _holds_encoder(raw.obj) or (isinstance(raw.obj, Mapping) and _holds_encoder(raw.obj.get("state_dict")))

    def extract(self, raw: RawCheckpoint, key: str | None) -> Extracted:
        if not isinstance(raw.obj, Mapping) or _holds_encoder(raw.obj) or "state_dict" not in raw.obj:
            if key is not None:
                raise CheckpointError(f"checkpoint {raw.path} is a bare state dict with no sub-checkpoints; "
                                      "omit --key")
            sd = tensor_dict(raw, raw.obj, "the file")
            return Extracted(strip_prefix(sd, "module."), {}, ArchHints())
        key = self.choose_key(raw, key)
        if key not in raw.obj:
            raise CheckpointError(f"checkpoint {raw.path} has no {key!r} entry (timm saves it only when "
                                  "trained with --model-ema); omit --key to read 'state_dict'")
        sd = tensor_dict(raw, raw.obj[key], f"entry {key!r}")
        return Extracted(strip_prefix(sd, "module."), {}, timm_name_hints(raw.obj.get("arch")), key,
                         sorted(str(k) for k in raw.obj if k != key))

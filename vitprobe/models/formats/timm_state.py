"""State dicts with timm key names: bare ones, and timm's own training checkpoints.

- A bare state dict: DINO's backbone releases, timm ``.pth``/``.safetensors`` files, and
  ``torch.save(model.state_dict())`` of a model wrapped by DistributedDataParallel
  (``module.*`` keys) or torch.compile (``_orig_mod.*``).
- timm ``train.py`` checkpoints (``timm.utils.CheckpointSaver``): ``state_dict`` (the default)
  and, when trained with ``--model-ema``, ``state_dict_ema``, both of the unwrapped model;
  ``arch`` (``args.model``, a timm model name, built with ``args.model_kwargs``), ``args``,
  ``optimizer``, ``epoch``, ``version``, ``metric``, ``saver`` and the AMP scaler's state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import timm
import torch
from timm.models.beit import Beit
from timm.models.vision_transformer import VisionTransformer

from vitprobe.errors import CheckpointError
from vitprobe.models.formats.base import (PATCH_KEY, ArchHints, CheckpointFormat, Extracted, entries_beside,
                                          register_format, strip_wrappers, tensor_dict, training_arg,
                                          unwrapped_key)
from vitprobe.models.reading import RawCheckpoint

def _holds_encoder(obj: Any) -> bool:
    """Whether ``obj`` is a state dict with a ViT/BEiT patch embedding (wrapper prefixes aside)."""
    return isinstance(obj, Mapping) and any(isinstance(k, str) and unwrapped_key(k) == PATCH_KEY for k in obj)


def timm_name_hints(name: Any, model_kwargs: Any = None) -> ArchHints:
    """Width, heads, depth and patch size of timm model ``name`` built with ``model_kwargs``
    (timm train.py's ``--model-kwargs``), read off the model built on the meta device (no
    weights are made); no hints for a name timm lacks, kwargs it refuses, or a non-ViT model."""
    kwargs = dict(model_kwargs) if isinstance(model_kwargs, Mapping) else {}
    info: dict[str, Any] = {"arch": name} if isinstance(name, str) else {}
    if kwargs:
        info["model_kwargs"] = kwargs
    if not isinstance(name, str) or not timm.is_model(name) or not all(isinstance(k, str) for k in kwargs):
        return ArchHints(info=info)
    try:
        with torch.device("meta"):
            model = timm.create_model(name, pretrained=False, **kwargs)
    except (TypeError, ValueError, AssertionError):  # kwargs this timm's model does not take
        return ArchHints(info=info)
    if not isinstance(model, (VisionTransformer, Beit)):
        return ArchHints(info=info)
    source = f"timm model arch {name!r}" + (f" with model_kwargs {kwargs}" if kwargs else "")
    return ArchHints(num_heads=model.blocks[0].attn.num_heads, heads_source=source,
                     width=model.embed_dim, depth=len(model.blocks),
                     patch_size=model.patch_embed.patch_size[0], info=info)


@register_format
class TimmStateDict(CheckpointFormat):
    name = "timm"
    priority = 90
    summary = ("timm keys: a bare state dict (DINO backbone release, timm .pth or .safetensors, "
               "module.* of DDP, _orig_mod.* of torch.compile; ViT or BEiT layout), or timm "
               "train.py's state_dict (default) / state_dict_ema")
    keys = ("state_dict", "state_dict_ema")

    def detect(self, raw: RawCheckpoint) -> bool:
        return _holds_encoder(raw.obj) or (isinstance(raw.obj, Mapping) and _holds_encoder(raw.obj.get("state_dict")))

    def extract(self, raw: RawCheckpoint, key: str | None) -> Extracted:
        if not isinstance(raw.obj, Mapping) or _holds_encoder(raw.obj) or "state_dict" not in raw.obj:
            if key is not None:
                raise CheckpointError(f"checkpoint {raw.path} is a bare state dict with no sub-checkpoints; "
                                      "omit --key")
            sd = tensor_dict(raw, raw.obj, "the file")
            return Extracted(strip_wrappers(sd), {}, ArchHints())
        key = self.choose_key(raw, key)
        if key not in raw.obj:
            raise CheckpointError(f"checkpoint {raw.path} has no {key!r} entry (timm saves it only when "
                                  "trained with --model-ema); omit --key to read 'state_dict'")
        sd = tensor_dict(raw, raw.obj[key], f"entry {key!r}")
        hints = timm_name_hints(raw.obj.get("arch"), training_arg(raw.obj.get("args"), "model_kwargs"))
        return Extracted(strip_wrappers(sd), {}, hints, key, entries_beside(raw, key))

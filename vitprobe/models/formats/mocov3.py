"""MoCo v3 checkpoints (facebookresearch/moco-v3 ``main_moco.py``).

The file holds ``epoch``, ``arch`` (e.g. ``vit_small``), ``state_dict`` of the DDP-wrapped
MoCo model, ``optimizer`` and ``scaler``. ``state_dict`` keys: ``module.base_encoder.*``
(whose ``head.*`` is the 3-layer BN projector), ``module.momentum_encoder.*`` (same layout)
and ``module.predictor.*``. MoCo v3's ViT-S has 12 heads, not 6. A linear-classification
checkpoint (``main_lincls.py``: ``epoch``, ``arch``, ``state_dict``, ``best_acc1``,
``optimizer``) holds the one frozen encoder under ``module.``, its ``head`` the classifier.
"""

from __future__ import annotations

from collections.abc import Mapping

from vitprobe.errors import CheckpointError

from vitprobe.models.formats.base import (CheckpointFormat, Extracted, NamedArch, arch_name_hints,
                                          entries_beside, entry, has_prefixed_keys, register_format,
                                          split_drops, strip_prefix, tensor_dict)
from vitprobe.models.reading import RawCheckpoint

MOCO_ARCHS: dict[str, NamedArch] = {"vit_small": NamedArch(384, 12, 12), "vit_base": NamedArch(768, 12, 12)}
"""MoCo v3's ``arch`` -> (width, heads, depth) of its vits.py."""
LINCLS_HEAD = "linear classifier of main_lincls.py (trained on the frozen encoder)"


@register_format
class MocoV3(CheckpointFormat):
    name = "mocov3"
    priority = 20
    summary = ("MoCo v3 checkpoint: state_dict with module.base_encoder.* (default) or momentum_encoder; "
               "or main_lincls.py's frozen encoder with its classifier")
    drops = {
        "head.*": "MoCo v3 projector MLP (training only); in main_lincls.py files, its linear classifier",
        "predictor.*": "MoCo v3 predictor MLP (training only)",
        "momentum_encoder.*": "the other encoder (momentum or base), not the one asked for",
        "base_encoder.*": "the other encoder (momentum or base), not the one asked for",
    }
    keys = ("base_encoder", "momentum_encoder")

    def detect(self, raw: RawCheckpoint) -> bool:
        if not isinstance(raw.obj, Mapping):
            return False
        sd = raw.obj.get("state_dict")
        return has_prefixed_keys(sd, "module.base_encoder.", "base_encoder.") or (
            str(raw.obj.get("arch")) in MOCO_ARCHS and has_prefixed_keys(sd, "module.patch_embed."))

    def extract(self, raw: RawCheckpoint, key: str | None) -> Extracted:
        sd = strip_prefix(tensor_dict(raw, entry(raw, "state_dict"), "entry 'state_dict'"), "module.")
        if has_prefixed_keys(sd, *(f"{k}." for k in self.keys)):
            key = self.choose_key(raw, key)
            kept, dropped = split_drops(strip_prefix(sd, f"{key}."), self.drops)
        elif key is not None:
            raise CheckpointError(f"checkpoint {raw.path} is a MoCo v3 linear-classification checkpoint "
                                  "(main_lincls.py): it holds one encoder and no base_encoder or "
                                  "momentum_encoder; omit --key")
        else:
            kept, dropped = split_drops(sd, {"head.*": LINCLS_HEAD})
        hints = arch_name_hints(raw.obj.get("arch"), MOCO_ARCHS, "arch", "MoCo v3")
        return Extracted(kept, dropped, hints, key, entries_beside(raw, "state_dict"))

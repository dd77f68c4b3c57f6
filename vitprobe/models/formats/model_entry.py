"""Formats that keep the weights under a top-level ``model`` entry: MAE, SimMIM and BEiT.

- MAE (facebookresearch/mae ``main_pretrain.py``): ``model`` (encoder keys as timm, plus the
  decoder ``decoder_*`` and ``mask_token`` in training checkpoints), ``optimizer``, ``epoch``,
  ``scaler``, ``args``. The encoder-only release holds ``model`` alone; fine-tuned releases
  use ``fc_norm`` + ``head`` (kept: a classifier).
- SimMIM (microsoft/SimMIM ``utils.save_checkpoint``): ``model`` with ``encoder.*`` (a BEiT
  layout: q/v biases, ``gamma_1/2`` layer scale, shared or per-block relative position bias,
  ``encoder.mask_token``) and the pixel decoder ``decoder.*``.
- BEiT (microsoft/unilm ``beit``): ``model`` in BEiT layout with ``mask_token`` and the
  visual-token head ``lm_head.*`` of pre-training.
The BEiT layout already uses timm's Beit names; only the relative-position index buffers are
dropped (timm recomputes them).
"""

from __future__ import annotations

from collections.abc import Mapping

from vitprobe.models.formats.base import (ArchHints, CheckpointFormat, Extracted, NamedArch, arch_name_hints,
                                          entries_beside, entry, has_prefixed_keys, register_format,
                                          split_drops, strip_prefix, tensor_dict, training_arg)
from vitprobe.models.inference import is_beit_layout
from vitprobe.models.reading import RawCheckpoint


MAE_MODELS: dict[str, NamedArch] = {
    "mae_vit_base_patch16": NamedArch(768, 12, 12), "mae_vit_large_patch16": NamedArch(1024, 16, 24),
    "mae_vit_huge_patch14": NamedArch(1280, 16, 32), "vit_base_patch16": NamedArch(768, 12, 12),
    "vit_large_patch16": NamedArch(1024, 16, 24), "vit_huge_patch14": NamedArch(1280, 16, 32)}
"""MAE's ``args.model`` (pre-training and fine-tuning) -> (width, heads, depth) of its models_*.py."""


class ModelEntryFormat(CheckpointFormat):
    """Weights under ``model``, optionally below ``encoder_prefix``, minus :attr:`drops`."""

    encoder_prefix = ""

    def hints(self, raw: RawCheckpoint) -> ArchHints:
        """What the checkpoint says beyond its weights (nothing, unless a format knows more)."""
        return ArchHints()

    def model_dict(self, raw: RawCheckpoint) -> object:
        """The checkpoint's ``model`` entry (the weights of MAE, SimMIM and BEiT files), or None."""
        return raw.obj.get("model") if isinstance(raw.obj, Mapping) else None

    def extract(self, raw: RawCheckpoint, key: str | None) -> Extracted:
        self.choose_key(raw, key)
        sd = tensor_dict(raw, entry(raw, "model"), "entry 'model'")
        if self.encoder_prefix:
            sd = strip_prefix(sd, self.encoder_prefix)
        kept, dropped = split_drops(sd, self.drops)
        return Extracted(kept, dropped, self.hints(raw), None, entries_beside(raw, "model"))


@register_format
class SimMIM(ModelEntryFormat):
    name = "simmim"
    priority = 30
    summary = "SimMIM checkpoint: model with encoder.* (BEiT layout) and the pixel decoder"
    encoder_prefix = "encoder."
    drops = {"decoder.*": "SimMIM pixel decoder (training only)",
             "mask_token": "SimMIM mask token (training only)"}

    def detect(self, raw: RawCheckpoint) -> bool:
        return has_prefixed_keys(self.model_dict(raw), "encoder.")


@register_format
class Beit(ModelEntryFormat):
    name = "beit"
    priority = 40
    summary = "BEiT checkpoint: model in BEiT layout (relative position bias, gamma layer scale)"
    drops = {"mask_token": "BEiT mask token (pre-training only)",
             "lm_head.*": "BEiT visual-token prediction head (pre-training only)"}

    def detect(self, raw: RawCheckpoint) -> bool:
        model = self.model_dict(raw)
        return isinstance(model, Mapping) and is_beit_layout(model)


@register_format
class MAE(ModelEntryFormat):
    name = "mae"
    priority = 50
    summary = ("MAE checkpoint: model with the ViT encoder (decoder in training checkpoints); "
               "also DeiT's layout and MoCo v3's convert_to_deit.py output")
    drops = {"decoder_*": "MAE decoder (pre-training only)",
             "mask_token": "MAE mask token (pre-training only)"}

    def detect(self, raw: RawCheckpoint) -> bool:
        model = self.model_dict(raw)
        return isinstance(model, Mapping) and "patch_embed.proj.weight" in model

    def hints(self, raw: RawCheckpoint) -> ArchHints:
        """Heads and depth from ``args.model`` of MAE's training checkpoints (the release has no args).
        A ViT-S in this layout is DeiT-S (6 heads) or a MoCo v3 ViT-S (12 heads) that
        convert_to_deit.py rewrote: its head count is uncertain."""
        return arch_name_hints(training_arg(raw.obj.get("args"), "model"), MAE_MODELS, "args.model", "MAE",
                               uncertain_widths={384: "DeiT-S has 6, a MoCo v3 ViT-S converted by "
                                                                      "convert_to_deit.py has 12"})

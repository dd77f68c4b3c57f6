"""DINO full training checkpoints (facebookresearch/dino ``main_dino.py``), and SiT's, which nest alike.

The file holds ``student`` (DDP-wrapped: ``module.backbone.*``, ``module.head.*``),
``teacher`` (``backbone.*``, ``head.*``), ``optimizer``, ``epoch``, ``args`` (an argparse
Namespace with ``arch`` and ``patch_size``), ``dino_loss`` (the centre) and maybe
``fp16_scaler``. The DINO head (MLP + weight-normalised prototypes) is dropped. One network
saved alone (``torch.save(checkpoint["teacher"])``: ``backbone.*`` and ``head.*``, maybe under
``module.``) is read the same way, with no ``--key`` to choose and no ``args``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vitprobe.errors import CheckpointError
from vitprobe.models.formats.base import (PATCH_KEY, ArchHints, CheckpointFormat, Extracted, NamedArch, arch_name_hints,
                                          entries_beside, entry, has_prefixed_keys, register_format,
                                          split_drops, strip_prefix, tensor_dict, training_arg)
from vitprobe.models.reading import RawCheckpoint

DINO_ARCHS: dict[str, NamedArch] = {"vit_tiny": NamedArch(192, 3, 12), "vit_small": NamedArch(384, 6, 12),
                                    "vit_base": NamedArch(768, 12, 12)}
"""DINO's ``args.arch`` -> (width, heads, depth) of its vision_transformer.py."""


def dino_hints(args: Any, field: str = "arch", source: str = "DINO") -> ArchHints:
    """Heads, depth and patch size from the pickled ``args`` Namespace of DINO (its ``arch``) or
    SiT (its ``model``, from the same vit_tiny/small/base); absent fields give none."""
    patch = training_arg(args, "patch_size")
    return arch_name_hints(training_arg(args, field), DINO_ARCHS, f"args.{field}", source,
                           patch_size=patch if isinstance(patch, int) else None)


def _is_one_network(obj: Any) -> bool:
    """Whether ``obj`` is one network's state dict saved alone: a ViT patch embedding under
    ``backbone.`` (or ``module.backbone.``) among its top-level keys."""
    return isinstance(obj, Mapping) and any(k in obj for k in (f"backbone.{PATCH_KEY}", f"module.backbone.{PATCH_KEY}"))


@register_format
class DinoTraining(CheckpointFormat):
    name = "dino"
    priority = 10
    summary = ("DINO training checkpoint: teacher (default) or student, args Namespace; or one network "
               "(backbone.*, head.*) saved alone")
    drops = {"head.*": "DINO projection head and prototypes (training only)"}
    keys = ("teacher", "student")

    def networks(self, obj: Any) -> list[Any]:
        """The networks in ``obj``: itself where it is one saved alone, else its entries under ``keys``."""
        if _is_one_network(obj):
            return [obj]
        return [obj.get(k) for k in self.keys] if isinstance(obj, Mapping) else []

    def detect(self, raw: RawCheckpoint) -> bool:
        return any(has_prefixed_keys(net, "backbone.", "module.backbone.") for net in self.networks(raw.obj))

    def extract(self, raw: RawCheckpoint, key: str | None) -> Extracted:
        if _is_one_network(raw.obj):
            if key is not None:
                raise CheckpointError(f"checkpoint {raw.path} holds one network saved alone (backbone.*), with no "
                                      "teacher or student to choose; omit --key")
            sd, args, beside = tensor_dict(raw, raw.obj, "the file"), None, []
        else:
            key = self.choose_key(raw, key)
            held = [k for k in self.keys if isinstance(raw.obj, Mapping) and k in raw.obj]
            if held and key not in raw.obj:  # e.g. a file saved with the student alone
                raise CheckpointError(f"checkpoint {raw.path} has no {key!r} entry; it holds {held[0]!r}: "
                                      f"pass --key {held[0]} (Python key={held[0]!r})")
            sd = tensor_dict(raw, entry(raw, key), f"entry {key!r}")
            args, beside = raw.obj.get("args"), entries_beside(raw, key)
        sd = strip_prefix(strip_prefix(sd, "module."), "backbone.")
        kept, dropped = split_drops(sd, self.drops)
        return Extracted(kept, dropped, self.hints(args), key, beside)

    def hints(self, args: Any) -> ArchHints:
        return dino_hints(args)


@register_format
class SitTraining(DinoTraining):
    """SiT training checkpoints (Sara-Ahmed/SiT ``main.py``): DINO's nesting (both networks
    DDP-wrapped there), each with a contrastive ``head`` and a reconstruction ``head_recons``;
    ``args.model`` names the ViT."""

    name = "sit"
    priority = 9  # before dino, which would leave head_recons.* unexplained
    summary = ("SiT training checkpoint: teacher (default) or student, DINO's nesting plus head_recons; "
               "or one network saved alone")
    drops = {"head.*": "SiT contrastive head (training only)",
             "head_recons.*": "SiT reconstruction head (training only)"}

    def detect(self, raw: RawCheckpoint) -> bool:
        return super().detect(raw) and any(
            has_prefixed_keys(net, "head_recons.", "module.head_recons.") for net in self.networks(raw.obj))

    def hints(self, args: Any) -> ArchHints:
        return dino_hints(args, field="model", source="SiT")

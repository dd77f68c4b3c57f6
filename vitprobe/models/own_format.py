"""vitprobe's own checkpoint: one ``.safetensors`` file of timm encoder weights plus metadata.

The header metadata key ``"vitprobe"`` holds JSON
``{"format_version": 1, "arch": ArchSpec dict, "objective": str, "objective_revision": int,
"config": dict (the options as given, defaults filled in), "in_force": {"hparams": the
objective's hyper-parameters after its and the preset's defaults, "lr": the peak learning
rate}, "epoch": int, "step": int, "warnings": the collapse warnings training printed, as
"epoch N: text", "world_size": the training's processes}`` (files written before
``objective_revision``, ``in_force``, ``warnings`` and ``world_size`` existed read as None,
{}, [] and 1); the tensors are the encoder's state dict with
plain timm keys.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch.nn as nn

from vitprobe.errors import CheckpointError
from vitprobe.models.architecture import ArchSpec
from vitprobe.output_paths import write_atomically

FORMAT_VERSION = 1
METADATA_KEY = "vitprobe"
_META_DEFAULTS: dict[str, Any] = {"objective": "none", "objective_revision": None, "config": {},
                                  "in_force": {}, "epoch": 0, "step": 0, "warnings": [],
                                  "world_size": 1}  # the training's processes (its batch is per process)


def save_encoder(path: str | os.PathLike[str], model: nn.Module, arch: ArchSpec,
                 meta: Mapping[str, Any], *, durable: bool = False) -> Path:
    """Write ``model``'s weights and metadata to ``path`` atomically (temp file + os.replace;
    ``durable``: fsync'd, see :func:`vitprobe.output_paths.write_atomically`).

    ``meta`` may hold the keys of ``_META_DEFAULTS`` (missing ones take their defaults); other
    keys are a programming error.
    """
    from safetensors.torch import save_file

    unknown = set(meta) - set(_META_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown checkpoint metadata keys: {sorted(unknown)}")
    header = {"format_version": FORMAT_VERSION, "arch": arch.to_dict(), **_META_DEFAULTS, **meta}
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    path = Path(path)
    return write_atomically(path, lambda tmp: save_file(tensors, tmp, metadata={
        METADATA_KEY: json.dumps(header, sort_keys=True)}), durable=durable)


def parse_header(path: Path, header: Any) -> tuple[ArchSpec, dict[str, Any]]:
    """The architecture and the remaining metadata of a parsed ``"vitprobe"`` header."""
    if not isinstance(header, dict) or header.get("format_version") != FORMAT_VERSION:
        version = header.get("format_version") if isinstance(header, dict) else None
        fix = ("it was written by a newer vitprobe: upgrade vitprobe to read it"
               if isinstance(version, int) and version > FORMAT_VERSION else
               "the file's vitprobe header is damaged or not vitprobe's; train or export it again")
        raise CheckpointError(f"checkpoint {path}: vitprobe format_version {version!r} is not "
                              f"{FORMAT_VERSION}; {fix}")
    try:
        arch = ArchSpec.from_dict(header["arch"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path}: its vitprobe architecture metadata is invalid "
                              f"({err}); the file is damaged or from another vitprobe") from None
    meta = {k: header[k] if k in header else copy.deepcopy(default)  # a model's own, never the shared defaults
            for k, default in _META_DEFAULTS.items()}
    return arch, meta

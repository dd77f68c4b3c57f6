"""Writing the encoder of a vitprobe checkpoint in an official training-code layout.

The nesting follows the published code, so their loaders (and vitprobe's) read the file:
- dino: ``{"teacher": {"backbone." + k}, "epoch", "args": {arch, patch_size}}`` (DINO
  ``main_dino.py``, whose evaluation scripts read ``teacher``; no head and no ``student``:
  the file holds one encoder, and a copy of it under ``student`` would pass for a student)
- mocov3: ``{"epoch", "arch", "state_dict": {"module.base_encoder." + k}}`` (``main_moco.py``)
- mae: ``{"model": {k}, "epoch", "args": {model}}`` (MAE ``misc.save_model``, without
  the optimiser; its loaders read ``model``)
- simmim: ``{"model": {"encoder." + k, plus the relative_position_index buffers SimMIM's
  modules persist}, "epoch"}`` (SimMIM ``utils.save_checkpoint``); BEiT-family encoders with
  SimMIM's shared relative position bias only.

Each file also carries vitprobe's training record (objective, config, epoch, collapse warnings)
under ``vitprobe_training``, which the official loaders pass over and vitprobe's reads back.

The training scripts pickle ``args`` as an argparse Namespace, which ``torch.load`` refuses
under its default ``weights_only=True`` (torch >= 2.6); exports write it as a dict of the
fields the loaders read, so a plain ``torch.load`` reads them. Only encoders that the official
ViT classes can hold are exported: those would silently drop layer scale or register tokens.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import torch

from vitprobe.errors import CheckpointError, OutputExistsError, warn_user
from vitprobe.models.architecture import ArchSpec
from vitprobe.models.formats.base import NamedArch, custom_arch_name
from vitprobe.models.formats.dino import DINO_ARCHS
from vitprobe.models.formats.model_entry import MAE_MODELS
from vitprobe.models.formats.mocov3 import MOCO_ARCHS
from vitprobe.models.loading import EXPORTED_TRAINING, interpret
from vitprobe.models.reading import read_checkpoint
from vitprobe.output_paths import check_parent_folders, write_torch
from vitprobe.json_safe import jsonable

Tensors = dict[str, torch.Tensor]


def _is(arch: NamedArch, spec: ArchSpec) -> bool:
    return arch == (spec.embed_dim, spec.num_heads, spec.depth)


def _arch_name(table: dict[str, NamedArch], spec: ArchSpec) -> str:
    """The published name of ``spec`` (width, heads and depth), else ``vit_d<width>_h<heads>``."""
    return next((name for name, arch in table.items() if _is(arch, spec)),
                custom_arch_name(spec.embed_dim, spec.num_heads))


def _prefixed(prefix: str, sd: Tensors) -> Tensors:
    return {prefix + k: v for k, v in sd.items()}


def _index_buffers(spec: ArchSpec) -> Tensors:
    """The relative-position index buffers that BEiT/SimMIM modules keep in their state dict."""
    from timm.models.beit import gen_relative_position_index

    index = gen_relative_position_index(spec.grid)
    if spec.rel_pos_bias == "shared":
        return {"rel_pos_bias.relative_position_index": index}
    if spec.rel_pos_bias == "per_block":
        return {f"blocks.{i}.attn.relative_position_index": index.clone() for i in range(spec.depth)}
    return {}


def _dino(sd: Tensors, spec: ArchSpec, meta: dict[str, Any]) -> dict[str, Any]:
    args = {"arch": _arch_name(DINO_ARCHS, spec), "patch_size": spec.patch_size}
    return {"teacher": _prefixed("backbone.", sd), "epoch": meta["epoch"], "args": args}


def _mocov3(sd: Tensors, spec: ArchSpec, meta: dict[str, Any]) -> dict[str, Any]:
    return {"epoch": meta["epoch"], "arch": _arch_name(MOCO_ARCHS, spec),
            "state_dict": _prefixed("module.base_encoder.", sd)}


def _mae(sd: Tensors, spec: ArchSpec, meta: dict[str, Any]) -> dict[str, Any]:
    published = (n for n, arch in MAE_MODELS.items() if n.startswith("mae_") and
                 n.endswith(f"_patch{spec.patch_size}") and _is(arch, spec))
    name = next(published, custom_arch_name(spec.embed_dim, spec.num_heads))
    return {"model": dict(sd), "epoch": meta["epoch"], "args": {"model": name}}


def _simmim(sd: Tensors, spec: ArchSpec, meta: dict[str, Any]) -> dict[str, Any]:
    return {"model": _prefixed("encoder.", {**sd, **_index_buffers(spec)}), "epoch": meta["epoch"]}


# What the official ViT classes (DINO's vision_transformer.py, MoCo v3's and MAE's timm-based
# ViTs) hold: a class token, no registers, no layer scale, qkv bias, MLP ratio 4, no classifier.
_OFFICIAL_VIT = {"reg_tokens": 0, "layer_scale": None, "qkv_bias": True, "mlp_ratio": 4.0,
                 "global_pool": "token", "fc_norm": False, "num_classes": 0}


def _unexportable(spec: ArchSpec, fmt: str) -> list[str]:
    """What of ``spec`` the official classes of layout ``fmt`` cannot hold: ``field value`` each."""
    if EXPORTERS[fmt][0] == "vit":
        return [f"{k} {getattr(spec, k)}" for k, v in _OFFICIAL_VIT.items() if getattr(spec, k) != v]
    if spec.rel_pos_bias != "shared":  # SimMIM's loader reads the one shared table
        return [f"rel_pos_bias {spec.rel_pos_bias}"]
    return []


# The layout each objective's official code writes (gmml and the hybrid have none of these).
_NATURAL_FORMAT = {"dino": "dino", "mocov3": "mocov3", "mae": "mae", "simmim": "simmim"}

EXPORTERS: dict[str, tuple[str, Callable[[Tensors, ArchSpec, dict[str, Any]], dict[str, Any]]]] = {
    "dino": ("vit", _dino), "mocov3": ("vit", _mocov3), "mae": ("vit", _mae), "simmim": ("beit", _simmim),
}
"""Export format -> (encoder family it needs, builder of the checkpoint object)."""


def export_checkpoint(src: str | os.PathLike[str], fmt: str, out: str | os.PathLike[str],
                      overwrite: bool = False) -> Path:
    """Write the encoder of vitprobe checkpoint ``src`` to ``out`` in layout ``fmt`` (atomically)."""
    src, out = Path(src), Path(out)
    if fmt not in EXPORTERS:
        raise CheckpointError(f"cannot export {src} as {fmt!r}; choose one of {', '.join(EXPORTERS)}")
    if out.suffix == ".safetensors":
        raise OutputExistsError(f"{out}: official {fmt} checkpoints are torch pickles; name --out "
                                f"with .pth, e.g. {out.with_suffix('.pth')}")
    check_parent_folders(out)
    if out.is_dir():
        raise OutputExistsError(f"{out} is a folder; name the checkpoint file, e.g. {out / (fmt + '.pth')}")
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} already exists; pass --overwrite (Python: overwrite=True) or choose another --out")
    raw = read_checkpoint(src)
    it = interpret(raw)
    if it.format != "vitprobe":
        raise CheckpointError(f"{src} is a {it.format} checkpoint; export needs a vitprobe "
                              "checkpoint (.safetensors written by `vitprobe train`)")
    family, build = EXPORTERS[fmt]
    if it.spec.family != family:
        raise CheckpointError(f"{src} holds a {it.spec.family} encoder but {fmt} checkpoints hold "
                              f"a {family} encoder; export it as one of "
                              f"{', '.join(n for n, (f, _) in EXPORTERS.items() if f == it.spec.family)}")
    unfit = _unexportable(it.spec, fmt)
    if unfit:
        raise CheckpointError(f"{src}: the official {fmt} model cannot hold this encoder ({', '.join(unfit)}; "
                              f"its loader would drop or misread those weights); load the vitprobe "
                              f"file itself (vitprobe.load_model, a timm {it.spec.family} encoder) instead")
    training = it.report["training"]
    trained_as = _NATURAL_FORMAT.get(str(training.get("objective")))
    if trained_as not in (None, fmt):
        warn_user(f"{src}: trained with {training['objective']}, exported in the {fmt} layout, which loaders "
                  f"will take for a {fmt} checkpoint; its training record goes with it ({EXPORTED_TRAINING})")
    obj = {**build(it.state_dict, it.spec, training), EXPORTED_TRAINING: jsonable(training)}
    return write_torch(obj, out)

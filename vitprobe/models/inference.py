"""Architecture inference: an ArchSpec read off the shapes of a timm-named state dict.

What the weights show: patch size (patch-embed kernel), width, depth (block count), the
position-embedding grid (so the image size = grid * patch), register tokens, layer scale,
relative position bias (shared / per block / none), qkv bias, MLP ratio, classifier size.
What they do not show is the number of heads (except through a relative position bias
table, whose columns are heads, which a ``num_heads`` given by the user may not contradict,
nor may it contradict the architecture that vitprobe's own checkpoints store).
Heads then come from, in this order: ``num_heads`` given by the user; the table; the
checkpoint's own metadata (DINO ``args.arch``, MoCo v3 ``arch``) when its width matches; the
published value for the width (ViT-T 192: 3, ViT-S 384: 6, ViT-B 768: 12, ViT-L 1024: 16,
ViT-H 1280: 16), reported as guessed where the format says the width is ambiguous in its
layout (a ViT-S in the ``model`` layout: DeiT-S 6, MoCo v3 12); otherwise
``max(1, width // 64)`` (64-wide heads). Where the metadata names a published architecture of
the weights' width, a block count other than its depth is an error (a truncated file).
Layer scale is a flag in effect: trained gammas overwrite the init, which is reported as
0.1 (the BEiT/SimMIM init value) because the weights cannot reveal it.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Iterable, Mapping

import torch

from vitprobe.errors import CheckpointError, ConfigError, plural, warn_user
from vitprobe.models.architecture import ArchSpec
from vitprobe.models.formats.base import ArchHints

PUBLISHED_HEADS: dict[int, int] = {192: 3, 384: 6, 768: 12, 1024: 16, 1280: 16}
INFERRED_LAYER_SCALE = 0.1
_BLOCK = re.compile(r"^blocks\.(\d+)\.")
_SWIN_BLOCK = re.compile(r"(^|\.)layers\.\d+\.blocks\.\d+\.")  # Swin stages: layers.N.blocks.M
_BEIT_MARKERS = ("attn.q_bias", "relative_position_bias_table", ".gamma_1")


_CONV_STEM_KEY = re.compile(r"(^|\.)patch_embed\.proj\.\d+\.")
CONV_STEM = ("a ViT with a convolutional stem (patch_embed.proj.N.*, as MoCo v3's vit_conv_small/base), which "
             "vitprobe does not read; it reads ViTs whose patch embedding is one strided convolution")


def has_conv_stem(keys: Iterable[object]) -> bool:
    """Keys of a patch embedding made of several layers (``patch_embed.proj.N.*``)."""
    return any(isinstance(k, str) and _CONV_STEM_KEY.search(k) for k in keys)


def is_beit_layout(keys: Iterable[object]) -> bool:
    """BEiT-style keys: separate q/v biases, relative position bias tables or gamma layer scale."""
    return any(isinstance(k, str) and k.endswith(_BEIT_MARKERS) for k in keys)


def _shape(sd: Mapping[str, torch.Tensor], key: str, ndim: int, path: Path) -> tuple[int, ...]:
    shape = tuple(sd[key].shape)
    if len(shape) != ndim:
        raise CheckpointError(f"checkpoint {path}: {key} has shape {list(shape)}, expected "
                              f"{ndim} dimensions; this is not a timm-style ViT encoder")
    return shape


def _grid(sd: Mapping[str, torch.Tensor], prefix_tokens: int, path: Path) -> int | None:
    """Side of the square patch grid that the position embedding or rel-pos table was made for."""
    if "pos_embed" in sd:
        tokens = _shape(sd, "pos_embed", 3, path)[1] - prefix_tokens
        side = math.isqrt(max(tokens, 0))
        if side * side != tokens or side == 0:
            total = tokens + prefix_tokens
            layout = ("; vitprobe reads ViTs trained on a square grid of patches: check that the file is "
                      "whole and that it holds a square-image ViT")
            if math.isqrt(total) ** 2 == total:  # the grid alone: no position for the class token
                layout = (f"; a square grid of {total} patches with no position for the "
                          f"{plural(prefix_tokens, 'prefix token')}, as in DINOv2 with registers, SigLIP or timm's no_embed_class models, "
                          "which vitprobe does not read")
            raise CheckpointError(f"checkpoint {path}: pos_embed holds {total} tokens, not "
                                  f"{plural(prefix_tokens, 'prefix token')} + a square grid{layout}")
        return side
    tables = [k for k in sd if k.endswith("relative_position_bias_table")]
    if tables:
        rows = _shape(sd, tables[0], 2, path)[0] - 3  # (2g-1)^2 offsets + 3 class-token entries
        span = math.isqrt(max(rows, 0))
        if span * span != rows or span % 2 == 0:
            raise CheckpointError(f"checkpoint {path}: {tables[0]} has {rows + 3} rows, not "
                                  "(2*grid-1)^2 + 3; this is not a BEiT-style bias table")
        return (span + 1) // 2
    return None


GUESSED = "guessed:"  # how a head count that no file, table or paper gives is reported
GIVEN = "given (--num-heads; Python num_heads=)"  # how a head count the user gave is reported


def _heads(width: int, sd: Mapping[str, torch.Tensor], hints: ArchHints,
           num_heads: int | None, path: Path) -> tuple[int, str]:
    """Head count and where it came from (see the module docstring for the order)."""
    tables = sorted(k for k in sd if k.endswith("relative_position_bias_table"))
    shown = _shape(sd, tables[0], 2, path)[1] if tables else None
    if num_heads is not None and shown not in (None, num_heads):
        raise ConfigError(f"{num_heads} heads asked for (--num-heads; in Python num_heads= or arch=) contradict "
                          f"checkpoint {path}: its {tables[0]} has {shown} columns, one per head; ask for "
                          f"{shown} or leave the head count out")
    if num_heads is not None:
        heads, source = num_heads, GIVEN
        if hints.num_heads not in (None, num_heads) and hints.width in (None, width):  # the file may be wrong
            warn_user(f"--num-heads {num_heads} (Python num_heads=) overrides checkpoint {path}: its "
                      f"{hints.heads_source or 'metadata'} names {hints.num_heads} heads; per-head results "
                      "follow --num-heads")
    elif shown is not None:
        heads, source = shown, f"columns of {tables[0]}"
    elif hints.num_heads is not None and hints.width in (None, width):
        heads, source = hints.num_heads, hints.heads_source or "checkpoint metadata"
    elif width in hints.uncertain_widths and width in PUBLISHED_HEADS:
        heads = PUBLISHED_HEADS[width]
        source = f"{GUESSED} published value for width {width} ({hints.uncertain_widths[width]})"
    elif width in PUBLISHED_HEADS:
        heads, source = PUBLISHED_HEADS[width], f"published value for width {width}"
    else:
        heads, source = max(1, width // 64), f"{GUESSED} width {width} // 64 (no published value for this width)"
    if heads < 1 or width % heads:
        raise CheckpointError(f"checkpoint {path}: {heads} heads do not divide width {width}; "
                              "pass --num-heads with a divisor of the width")
    return heads, source


def _why_no_patch_embedding(sd: Mapping[str, torch.Tensor]) -> str:
    """Why weights without ``patch_embed.proj.weight`` are no encoder: a prefix the chosen
    layout did not strip (``--format`` that does not match the file), or no ViT at all."""
    if has_conv_stem(sd):
        return CONV_STEM
    nested = sorted(k[: -len("patch_embed.proj.weight")] for k in sd if k.endswith(".patch_embed.proj.weight"))
    if nested:
        return (f"the patch embedding is under {nested[0]!r}, which the chosen layout does not "
                "strip; drop --format to detect the layout (see `vitprobe models`)")
    return ("no patch embedding (patch_embed.proj.weight), so these are not ViT/BEiT encoder weights "
            "(a CNN state dict?); pass a ViT checkpoint, or --format/--key to pick the encoder inside it")


def infer_arch(sd: Mapping[str, torch.Tensor], hints: ArchHints, path: Path,
               num_heads: int | None = None) -> tuple[ArchSpec, str]:
    """The ArchSpec that ``sd`` (timm key names) was saved from, and the source of its heads."""
    if hints.spec is not None:
        if num_heads not in (None, hints.spec.num_heads):
            raise ConfigError(f"--num-heads {num_heads} (Python num_heads=) contradicts checkpoint {path}: it "
                              f"stores its architecture, with {hints.spec.num_heads} heads; drop --num-heads, "
                              "or give it once per --checkpoint with auto for this one")
        return hints.spec, "stored in the checkpoint"
    if "patch_embed.proj.weight" not in sd:
        raise CheckpointError(f"checkpoint {path}: {_why_no_patch_embedding(sd)}")
    width, chans, ph, pw = _shape(sd, "patch_embed.proj.weight", 4, path)
    if chans != 3 or ph != pw or ph < 1:
        raise CheckpointError(f"checkpoint {path}: patch embedding kernel {[width, chans, ph, pw]} "
                              "is not a square patch over 3 colour channels; not supported")
    blocks = {int(m.group(1)) for k in sd if (m := _BLOCK.match(k))}
    if any(_SWIN_BLOCK.search(k) for k in sd):
        raise CheckpointError(f"checkpoint {path}: a Swin Transformer (layers.N.blocks.M.*), which "
                              "vitprobe does not read; it reads ViT and BEiT encoders")
    if not blocks:
        raise CheckpointError(f"checkpoint {path}: no transformer blocks (blocks.N.*) found; "
                              "pass --format/--key to pick the encoder weights inside the file (Python: format=, key=)")
    if "cls_token" not in sd:
        raise CheckpointError(f"checkpoint {path}: no cls_token, a ViT without a class token (as timm's "
                              "class_token=False), which vitprobe does not read from a file; build the model in "
                              "Python, load its weights and pass it: vitprobe.analyze(model, ...)")
    beit = is_beit_layout(sd)
    reg_tokens = _shape(sd, "reg_token", 3, path)[1] if "reg_token" in sd else 0
    grid = _grid(sd, 1 + reg_tokens, path)
    depth = max(blocks) + 1
    if hints.depth not in (None, depth) and hints.width == width:
        raise CheckpointError(f"checkpoint {path}: {hints.heads_source} has {hints.depth} blocks but the "
                              f"weights hold {depth} (blocks.0-{depth - 1}); the file is truncated or "
                              "inconsistent")
    if hints.patch_size is not None and hints.patch_size != ph:
        raise CheckpointError(f"checkpoint {path}: metadata says patch size {hints.patch_size} but "
                              f"the patch embedding kernel is {ph}; the file is inconsistent")
    if "rel_pos_bias.relative_position_bias_table" in sd:
        rel_pos = "shared"
    elif any(k.endswith("attn.relative_position_bias_table") for k in sd):
        rel_pos = "per_block"
    else:
        rel_pos = "none"
    first = f"blocks.{min(blocks)}."  # the settings of every block, read where one is (a file may lack block 0)
    fc1 = f"{first}mlp.fc1.weight"
    mlp_ratio = _shape(sd, fc1, 2, path)[0] / width if fc1 in sd else 4.0
    has_scale = any(k.endswith((".gamma_1", ".ls1.gamma")) for k in sd)
    heads, source = _heads(width, sd, hints, num_heads, path)
    fc_norm = "fc_norm.weight" in sd
    spec = ArchSpec(
        family="beit" if beit else "vit", patch_size=ph, embed_dim=width, depth=depth,
        num_heads=heads, img_size=(grid or 224 // ph) * ph, reg_tokens=reg_tokens,
        qkv_bias=f"{first}attn.{'q_bias' if beit else 'qkv.bias'}" in sd,
        mlp_ratio=mlp_ratio, layer_scale=INFERRED_LAYER_SCALE if has_scale else None,
        rel_pos_bias=rel_pos, abs_pos_emb="pos_embed" in sd,
        global_pool="avg" if fc_norm else "token", fc_norm=fc_norm,
        num_classes=_shape(sd, "head.weight", 2, path)[0] if "head.weight" in sd else 0,
    )
    return spec, source

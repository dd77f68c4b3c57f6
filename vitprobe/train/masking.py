"""Patch masks for masked image modelling; True marks a masked (hidden or corrupted) patch.

* :func:`random_mask` -- MAE: N - int(N * (1 - ratio)) patches, uniformly at random (MAE keeps
  int(N * (1 - ratio)) patches).
* :func:`block_mask` -- SimMIM: ceil(M * ratio) cells of a coarser grid of mask patches, each
  cell expanded to the model patches it covers (SimMIM's MaskGenerator).
* :func:`group_mask` -- GMML / SiT: random rectangles (sides <= 30% of the grid) until at least
  N * ratio patches are masked.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from vitprobe.errors import ConfigError


def check_mask_ratio(ratio: float, what: str) -> None:
    """Refuse a ratio outside (0, 1): no patch masked leaves the masked-patch loss empty."""
    if not 0.0 < ratio < 1.0:
        raise ConfigError(f"{what}: mask ratio {ratio} must lie in (0, 1); e.g. 0.75")


def _random_subset(num_patches: int, count: int, g: torch.Generator) -> Tensor:
    """Bool (N,) with ``count`` True entries at uniformly random positions."""
    order = torch.randperm(num_patches, generator=g)
    mask = torch.zeros(num_patches, dtype=torch.bool)
    mask[order[:count]] = True
    return mask


def random_mask(num_patches: int, ratio: float, g: torch.Generator) -> Tensor:
    """Bool (N,) with N - int(N * (1 - ratio)) True entries at uniformly random positions."""
    check_mask_ratio(ratio, "random mask")
    return _random_subset(num_patches, num_patches - int(num_patches * (1 - ratio)), g)


def block_mask(img_size: int, patch_size: int, mask_patch_size: int, ratio: float,
               g: torch.Generator) -> Tensor:
    """Bool (h, w) over model patches: ceil(M * ratio) of the M = (S / mask_patch)^2 cells.

    Each masked cell covers (mask_patch_size / patch_size)^2 model patches, so the masked
    fraction of patches equals ceil(M * ratio) / M (SimMIM: 30 of 49 cells at 224 px, 0.6).
    """
    check_mask_ratio(ratio, "block mask")
    if mask_patch_size % patch_size:
        raise ConfigError(f"mask_patch_size {mask_patch_size} must be a multiple of the model patch "
                          f"size {patch_size}; use e.g. {patch_size * max(1, mask_patch_size // patch_size)}")
    if img_size % mask_patch_size:
        raise ConfigError(f"image size {img_size} must be a multiple of mask_patch_size "
                          f"{mask_patch_size}; pick a mask_patch_size that divides {img_size}")
    cells = img_size // mask_patch_size
    coarse = _random_subset(cells * cells, math.ceil(cells * cells * ratio), g).view(cells, cells)
    scale = mask_patch_size // patch_size
    return coarse.repeat_interleave(scale, 0).repeat_interleave(scale, 1)


def group_mask(grid: tuple[int, int], ratio: float, g: torch.Generator,
               max_block: float = 0.3) -> Tensor:
    """Bool (h, w): random, possibly overlapping rectangles of patches until >= h w ratio are masked.

    As SiT's ``GMML_drop_rand_patches`` with the corruption aligned to patches: every
    rectangle has a height drawn uniformly from {1 .. max(1, floor(max_block * h))} and,
    independently, a width from {1 .. max(1, floor(max_block * w))} patches; its top-left
    patch is uniform over the grid and it is clipped at the border. Drawing stops as soon as
    h w ratio is reached (SiT compares the masked count with that real number), so the masked
    count lies in [ceil(h w ratio), ceil(h w ratio) + bh_max * bw_max - 1].
    """
    check_mask_ratio(ratio, "group mask")
    if not 0.0 < max_block <= 1.0:
        raise ConfigError(f"group mask: max_block {max_block} is outside (0, 1]; SiT uses 0.3")
    h, w = grid
    target = h * w * ratio
    max_h, max_w = max(1, int(max_block * h + 1e-9)), max(1, int(max_block * w + 1e-9))
    mask = torch.zeros(h, w, dtype=torch.bool)
    while int(mask.sum()) < target:
        bh = int(torch.randint(1, max_h + 1, (), generator=g))
        bw = int(torch.randint(1, max_w + 1, (), generator=g))
        top = int(torch.randint(0, h, (), generator=g))
        left = int(torch.randint(0, w, (), generator=g))
        mask[top:top + bh, left:left + bw] = True
    return mask


def upsample_mask(mask: Tensor, patch_size: int) -> Tensor:
    """(..., h, w) patch mask -> (..., h * p, w * p) pixel mask."""
    return mask.repeat_interleave(patch_size, -2).repeat_interleave(patch_size, -1)

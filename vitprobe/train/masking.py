"""Patch masks for masked image modelling; True marks a masked (hidden or corrupted) patch.

* :func:`random_mask` -- MAE: exactly round(N * ratio) patches, uniformly at random.
* :func:`block_mask` -- SimMIM: exactly round(M * ratio) cells of a coarser grid of mask
  patches, each cell expanded to the model patches it covers.
* :func:`group_mask` -- GMML: random rectangles of connected patches until the ratio is met.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from vitprobe.errors import ConfigError


def _check_ratio(ratio: float, what: str) -> None:
    if not 0.0 <= ratio < 1.0:
        raise ConfigError(f"{what}: mask ratio {ratio} is outside [0, 1); pick e.g. 0.75")


def random_mask(num_patches: int, ratio: float, g: torch.Generator) -> Tensor:
    """Bool (N,) with exactly round(N * ratio) True entries at uniformly random positions."""
    _check_ratio(ratio, "random mask")
    count = round(num_patches * ratio)
    order = torch.randperm(num_patches, generator=g)
    mask = torch.zeros(num_patches, dtype=torch.bool)
    mask[order[:count]] = True
    return mask


def block_mask(img_size: int, patch_size: int, mask_patch_size: int, ratio: float,
               g: torch.Generator) -> Tensor:
    """Bool (h, w) over model patches: exactly round(M * ratio) of the M = (S / mask_patch)^2 cells.

    Each masked cell covers (mask_patch_size / patch_size)^2 model patches, so the masked
    fraction of patches equals round(M * ratio) / M.
    """
    _check_ratio(ratio, "block mask")
    if mask_patch_size % patch_size:
        raise ConfigError(f"mask_patch_size {mask_patch_size} must be a multiple of the model patch "
                          f"size {patch_size}; use e.g. {patch_size * max(1, mask_patch_size // patch_size)}")
    if img_size % mask_patch_size:
        raise ConfigError(f"image size {img_size} must be a multiple of mask_patch_size "
                          f"{mask_patch_size}; pick a mask_patch_size that divides {img_size}")
    cells = img_size // mask_patch_size
    coarse = random_mask(cells * cells, ratio, g).view(cells, cells)
    scale = mask_patch_size // patch_size
    return coarse.repeat_interleave(scale, 0).repeat_interleave(scale, 1)


def group_mask(grid: tuple[int, int], ratio: float, g: torch.Generator, min_patches: int = 4,
               aspect: tuple[float, float] = (0.3, 1 / 0.3)) -> Tensor:
    """Bool (h, w) made of random rectangles of patches until >= round(h * w * ratio) are masked.

    Each rectangle has an area drawn uniformly in [min_patches, max(min_patches, still
    needed)] and a log-uniform aspect in ``aspect``; every connected group of the mask
    therefore holds at least ``min(min_patches, area of the largest fitting rectangle)``
    patches.
    """
    _check_ratio(ratio, "group mask")
    h, w = grid
    target = round(h * w * ratio)
    mask = torch.zeros(h, w, dtype=torch.bool)
    log_lo, log_hi = math.log(aspect[0]), math.log(aspect[1])
    while int(mask.sum()) < target:
        needed = target - int(mask.sum())
        high = max(min_patches, needed)
        area = min_patches + (high - min_patches) * float(torch.rand((), generator=g))
        a = math.exp(log_lo + (log_hi - log_lo) * float(torch.rand((), generator=g)))
        bh = min(h, max(1, round(math.sqrt(area * a))))
        bw = min(w, max(1, round(math.sqrt(area / a))))
        while bh * bw < min(min_patches, h * w):
            if bh < h:
                bh += 1
            else:
                bw += 1
        top = int(torch.randint(0, h - bh + 1, (), generator=g))
        left = int(torch.randint(0, w - bw + 1, (), generator=g))
        mask[top:top + bh, left:left + bw] = True
    return mask


def upsample_mask(mask: Tensor, patch_size: int) -> Tensor:
    """(..., h, w) patch mask -> (..., h * p, w * p) pixel mask."""
    return mask.repeat_interleave(patch_size, -2).repeat_interleave(patch_size, -1)

"""Image augmentations on tensors for self-supervised views, every draw taken from a torch.Generator.

Images enter normalised (``(x - mean) / std``); photometric operations run on the [0, 1]
pixels and the result is normalised again.  The recipe of one view is a :class:`ViewSpec`;
:func:`make_view` is a pure function of (image, spec, generator).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from vitprobe.data.base import IMAGENET_MEAN, IMAGENET_STD

_LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class ViewSpec:
    """One augmented view: random resized crop, flip, then photometric changes.

    ``jitter`` = (brightness, contrast, saturation, hue) strengths applied with
    probability ``jitter_p``; ``blur_sigma`` is the Gaussian sigma range in pixels at a 224 px
    image size, scaled by ``image_size / 224`` (``image_size``: the run's image size, by default
    the view's own ``size``), so that DINO's 96 px local crops of 224 px images take the same
    0.1-2 px as its global crops, and smaller images proportionally less.
    """

    size: int
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter_p: float = 0.8
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.2, 0.1)
    grey_p: float = 0.2
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_p: float = 0.0
    image_size: int | None = None


def _uniform(g: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * torch.rand((), generator=g).item()


def _coin(g: torch.Generator, p: float) -> bool:
    return p > 0 and torch.rand((), generator=g).item() < p


def crop_box(height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float],
             g: torch.Generator) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a crop with area fraction in ``scale`` and log-uniform aspect in ``ratio``.

    Ten tries as in torchvision's RandomResizedCrop, then the central crop with the aspect
    clamped to ``ratio``.
    """
    area = height * width
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target = area * _uniform(g, *scale)
        aspect = math.exp(_uniform(g, log_lo, log_hi))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (), generator=g))
            left = int(torch.randint(0, width - w + 1, (), generator=g))
            return top, left, h, w
    aspect = width / height
    if aspect < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif aspect > ratio[1]:
        h, w = height, round(height * ratio[1])
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def resized_crop(image: Tensor, box: tuple[int, int, int, int], size: int) -> Tensor:
    """Crop ``box`` = (top, left, h, w) of a (3, H, W) image and resize it to (3, size, size), bilinear."""
    top, left, h, w = box
    patch = image[:, top:top + h, left:left + w].unsqueeze(0)
    return F.interpolate(patch, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=True).squeeze(0)


def _grey(x: Tensor) -> Tensor:
    """Luma Y = 0.299 R + 0.587 G + 0.114 B, shape (1, H, W)."""
    w = torch.tensor(_LUMA, dtype=x.dtype).view(3, 1, 1)
    return (x * w).sum(0, keepdim=True)


def _shift_hue(x: Tensor, shift: float) -> Tensor:
    """Rotate the hue of RGB pixels in [0, 1] by ``shift`` turns (HSV round trip)."""
    r, g, b = x
    maxc, _ = x.max(0)
    minc, _ = x.min(0)
    delta = maxc - minc
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    hue = torch.where(maxc == r, ((g - b) / safe) % 6,
                      torch.where(maxc == g, (b - r) / safe + 2, (r - g) / safe + 4)) / 6
    hue = torch.where(delta > 0, hue, torch.zeros_like(hue))
    hue = (hue + shift) % 1.0
    sat = torch.where(maxc > 0, delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc)),
                      torch.zeros_like(maxc))
    # HSV -> RGB: channel n takes v - v s max(0, min(k, 4 - k, 1)), k = (n + 6 h) mod 6
    n = torch.tensor([5.0, 3.0, 1.0], dtype=x.dtype).view(3, 1, 1)
    k = (n + hue * 6) % 6
    return maxc - maxc * sat * torch.clamp(torch.minimum(k, 4 - k), 0, 1)


def colour_jitter(x: Tensor, strengths: tuple[float, float, float, float], g: torch.Generator) -> Tensor:
    """Brightness, contrast, saturation (factors in [1-s, 1+s]) and hue (shift in [-s, s]) in random order."""
    bright, contrast, sat, hue = strengths
    for op in torch.randperm(4, generator=g).tolist():
        if op == 0 and bright > 0:
            x = (x * _uniform(g, 1 - bright, 1 + bright)).clamp(0, 1)
        elif op == 1 and contrast > 0:
            f = _uniform(g, 1 - contrast, 1 + contrast)
            x = (f * x + (1 - f) * _grey(x).mean()).clamp(0, 1)
        elif op == 2 and sat > 0:
            f = _uniform(g, 1 - sat, 1 + sat)
            x = (f * x + (1 - f) * _grey(x)).clamp(0, 1)
        elif op == 3 and hue > 0:
            x = _shift_hue(x, _uniform(g, -hue, hue))
    return x


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of a (3, H, W) image, kernel radius ceil(3 sigma), reflect padding."""
    radius = max(1, math.ceil(3 * sigma))
    radius = min(radius, x.shape[-1] - 1, x.shape[-2] - 1)
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    y = F.pad(x.unsqueeze(0), (radius, radius, radius, radius), mode="reflect")
    y = F.conv2d(y, k.view(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3)
    y = F.conv2d(y, k.view(1, 1, -1, 1).expand(3, 1, -1, 1), groups=3)
    return y.squeeze(0)


def solarize(x: Tensor, threshold: float = 0.5) -> Tensor:
    """Invert pixels at or above ``threshold``: x -> 1 - x."""
    return torch.where(x >= threshold, 1 - x, x)


def make_view(image: Tensor, spec: ViewSpec, g: torch.Generator) -> Tensor:
    """One augmented, normalised (3, size, size) view of a (3, H, W) image normalised with
    ImageNet's mean and std, as every vitprobe dataset delivers it and analyses read it."""
    m = torch.tensor(IMAGENET_MEAN, dtype=image.dtype).view(3, 1, 1)
    s = torch.tensor(IMAGENET_STD, dtype=image.dtype).view(3, 1, 1)
    box = crop_box(image.shape[-2], image.shape[-1], spec.scale, spec.ratio, g)
    x = resized_crop((image * s + m).clamp(0, 1), box, spec.size)
    if _coin(g, spec.flip_p):
        x = x.flip(-1)
    if _coin(g, spec.jitter_p):
        x = colour_jitter(x, spec.jitter, g)
    if _coin(g, spec.grey_p):
        x = _grey(x).expand(3, -1, -1)
    if _coin(g, spec.blur_p):
        x = gaussian_blur(x, _uniform(g, *spec.blur_sigma) * (spec.image_size or spec.size) / 224)
    if _coin(g, spec.solarize_p):
        x = solarize(x)
    return ((x - m) / s).contiguous()


def make_views(image: Tensor, specs: list[ViewSpec], g: torch.Generator) -> Tensor:
    """Views of one image for a non-empty list of specs of equal size, stacked to (V, 3, size, size)."""
    return torch.stack([make_view(image, s, g) for s in specs])


def patch_multiple(size: float, patch: int) -> int:
    """``size`` rounded to the nearest multiple of ``patch`` (at least one patch)."""
    return max(patch, int(round(size / patch)) * patch)

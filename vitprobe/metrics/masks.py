"""DINO attention masks and their overlap (Jaccard) with ground-truth masks."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from vitprobe.errors import is_real
from vitprobe.metrics._checks import MetricInputError, ShapeError, check_tensor


def check_keep_mass(keep_mass: float) -> None:
    """Raise MetricInputError unless ``keep_mass`` lies in (0, 1]."""
    if not is_real(keep_mass) or not 0.0 < keep_mass <= 1.0:
        raise MetricInputError(f"keep_mass={keep_mass!r} must lie in (0, 1]; DINO uses 0.6")


def attention_mask(cls_attn: torch.Tensor, keep_mass: float = 0.6) -> torch.Tensor:
    """Smallest set of patches holding ``keep_mass`` of each head's attention, Bool (..., n).

    Per row: sort ascending, ``share = cumsum(sorted) / sum``; keep the patches where
    ``share > 1 - keep_mass`` (DINO's rule); the kept mass is >= keep_mass and dropping the
    smallest kept patch would fall below it.
    """
    check_tensor(cls_attn, "CLS attention (..., n)")
    check_keep_mass(keep_mass)
    values, order = torch.sort(cls_attn.float(), dim=-1)
    share = values.cumsum(dim=-1) / values.sum(dim=-1, keepdim=True).clamp_min(
        torch.finfo(torch.float32).tiny)
    keep_sorted = share > (1.0 - keep_mass)
    return torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)


def _check_tensors(pred: torch.Tensor, target: torch.Tensor, ignore: torch.Tensor | None) -> None:
    for name, mask in (("pred", pred), ("target", target), ("ignore", ignore)):
        if mask is not None:
            check_tensor(mask, name)


def jaccard(pred: torch.Tensor, target: torch.Tensor, ignore: torch.Tensor | None = None) -> torch.Tensor:
    """Intersection over union over the last two dims, float32, broadcasting the leading dims.

    ``IoU = |pred & target & ~ignore| / |(pred | target) & ~ignore|``; NaN when that union is empty.
    """
    _check_tensors(pred, target, ignore)
    try:
        shape = torch.broadcast_shapes(*(m.shape for m in (pred, target, ignore) if m is not None))
    except RuntimeError:
        raise ShapeError(f"masks of shapes {[tuple(m.shape) for m in (pred, target, ignore) if m is not None]} "
                         "do not broadcast; upsample the patch mask to the image first "
                         "(upsample_patch_mask)") from None
    if len(shape) < 2:
        raise ShapeError(f"masks need at least 2 dimensions (H, W), got shape {tuple(shape)}")
    pred, target = pred.bool(), target.bool()
    valid = ~ignore.bool() if ignore is not None else torch.ones_like(target)
    inter = (pred & target & valid).sum(dim=(-2, -1)).float()
    union = ((pred | target) & valid).sum(dim=(-2, -1)).float()
    return torch.where(union > 0, inter / union.clamp_min(1.0), torch.full_like(union, float("nan")))


def upsample_patch_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour upsampling of a patch mask (..., h, w) to pixels (..., H, W), Bool:
    ``out[..., i, j] = mask[..., floor(i h / H), floor(j w / W)]``."""
    if mask.dim() < 2:
        raise ShapeError(f"a patch mask needs at least 2 dimensions, got shape {tuple(mask.shape)}")
    lead = mask.shape[:-2]
    flat = mask.reshape(-1, 1, *mask.shape[-2:]).to(torch.uint8)
    up = F.interpolate(flat, size=tuple(int(s) for s in size), mode="nearest")
    return up.reshape(*lead, *up.shape[-2:]).bool()


def jaccard_matrix(pred: torch.Tensor, target: torch.Tensor, ignore: torch.Tensor | None = None) -> torch.Tensor:
    """IoU of every predicted mask with every target mask of the same image, (B, H, K).

    ``pred`` (B, H, ...) and ``target`` (B, K, ...) are masks over the same pixels, ``ignore``
    (B, ...) marks pixels to leave out. Counted with one matrix product per image:
    ``IoU[b, h, k] = |p_h & t_k| / (|p_h| + |t_k| - |p_h & t_k|)`` over valid pixels; NaN on an
    empty union.
    """
    _check_tensors(pred, target, ignore)
    if pred.dim() < 3 or target.dim() < 3:
        raise ShapeError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} need (B, masks, pixels...)")
    if ignore is not None and ignore.numel() != pred.shape[0] * math.prod(pred.shape[2:]):
        raise ShapeError(f"ignore {tuple(ignore.shape)} must cover the same pixels as pred {tuple(pred.shape)}")
    if pred.shape[0] != target.shape[0] or pred.shape[2:] != target.shape[2:]:
        raise ShapeError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must share "
                         "the batch size and the pixel grid")
    batch = pred.shape[0]
    valid = (~ignore.bool()).reshape(batch, 1, -1) if ignore is not None else True
    p = (pred.bool().reshape(batch, pred.shape[1], -1) & valid).float()
    t = (target.bool().reshape(batch, target.shape[1], -1) & valid).float()
    inter = p @ t.transpose(1, 2)
    union = p.sum(-1)[:, :, None] + t.sum(-1)[:, None, :] - inter
    return torch.where(union > 0, inter / union.clamp_min(1.0), torch.full_like(union, float("nan")))

"""Shape checks shared by the metrics: patch grids and the patch-to-patch attention block."""

from __future__ import annotations

import math

import torch

from vitprobe.errors import VitprobeError, check_whole, is_real


class MetricInputError(VitprobeError, ValueError):
    """A value handed to a metric is outside what the metric documents."""


class ShapeError(MetricInputError):
    """A tensor handed to a metric does not have the shape the metric documents."""


def check_tensor(value: object, what: str) -> None:
    """Raise MetricInputError unless ``value`` is a torch.Tensor."""
    if not isinstance(value, torch.Tensor):
        raise MetricInputError(f"{what} must be a torch.Tensor, got {type(value).__name__}; "
                               "wrap it with torch.as_tensor(...)")


def check_count(value: int, what: str, hint: str) -> None:
    """Raise MetricInputError unless ``value`` is a whole number >= 1 (NumPy integers too)."""
    check_whole(value, what, error=MetricInputError, hint=hint)


def check_positive(value: float, what: str, hint: str) -> None:
    """Raise MetricInputError unless ``value`` is a number > 0."""
    if not is_real(value) or not value > 0:
        raise MetricInputError(f"{what} must be > 0, got {value!r}; {hint}")


def patch_grid(num_patches: int, grid: tuple[int, int] | None) -> tuple[int, int]:
    """Return the (h, w) patch grid; without ``grid`` the patches must form a square."""
    if grid is not None:
        h, w = int(grid[0]), int(grid[1])
        if h * w != num_patches:
            raise ShapeError(
                f"grid {h}x{w} holds {h * w} patches but the tensor has {num_patches}; "
                "pass the model's patch grid and the right num_prefix_tokens")
        return h, w
    side = math.isqrt(num_patches)
    if side * side != num_patches:
        raise ShapeError(
            f"{num_patches} patch tokens do not form a square grid; pass grid=(h, w) "
            "or the right num_prefix_tokens")
    return side, side


def check_rank(tensor: torch.Tensor, rank: int, what: str) -> None:
    """Raise ShapeError unless ``tensor`` is a tensor with ``rank`` dimensions."""
    check_tensor(tensor, what)
    if tensor.dim() != rank:
        raise ShapeError(f"{what} must have {rank} dimensions, got shape {tuple(tensor.shape)}")


def patch_attention(attn: torch.Tensor, num_prefix_tokens: int = 1) -> torch.Tensor:
    """Patch-to-patch block of ``attn`` (B, H, N, N) with rows renormalised to sum to 1.

    ``A = attn[:, :, P:, P:];  A[i, :] /= sum_j A[i, j]``, exactly however small the sum (a query
    that gives all but 1e-12 of its attention to the class token still has a distribution over
    the patches). A row with no patch mass at all (below the dtype's smallest normal number:
    every weight on prefix tokens) is uniform, 1 / N', as the published notebooks' additive eps
    makes it. Computed in float32 at least. Negative entries (logits rather than post-softmax
    probabilities) and NaN entries (a forward pass that overflowed) are errors.
    """
    check_rank(attn, 4, "attention (B, H, N, N)")
    if attn.shape[-1] != attn.shape[-2]:
        raise ShapeError(f"attention must be square over tokens, got shape {tuple(attn.shape)}")
    if not 0 <= num_prefix_tokens < attn.shape[-1] - 1:
        raise ShapeError(
            f"num_prefix_tokens={num_prefix_tokens} leaves fewer than 2 patch tokens "
            f"out of {attn.shape[-1]}; pass the model's num_prefix_tokens")
    block = attn[:, :, num_prefix_tokens:, num_prefix_tokens:]
    if block.dtype not in (torch.float32, torch.float64):
        block = block.float()
    if block.numel() and not bool(block.amin() >= 0):  # amin propagates NaN
        if bool(block.isnan().any()):
            raise MetricInputError("attention has NaN entries: the forward pass gave non-finite values (weights "
                                   "that are not finite, or a float16 overflow: analyse in float32)")
        raise MetricInputError("attention has negative entries; metrics take post-softmax "
                               "probabilities (apply softmax over the last dimension first)")
    sums = block.sum(dim=-1, keepdim=True)
    empty = sums < torch.finfo(block.dtype).tiny
    rows = block / torch.where(empty, 1.0, sums)
    if bool(empty.any()):
        rows = torch.where(empty, 1.0 / block.shape[-1], rows)
    return rows


def patch_tokens(tokens: torch.Tensor, num_prefix_tokens: int = 1) -> torch.Tensor:
    """Patch tokens of ``tokens`` (B, N, C): ``tokens[:, P:]`` as floating point."""
    check_rank(tokens, 3, "tokens (B, N, C)")
    if not 0 <= num_prefix_tokens < tokens.shape[1] - 1:
        raise ShapeError(
            f"num_prefix_tokens={num_prefix_tokens} leaves fewer than 2 patch tokens "
            f"out of {tokens.shape[1]}; pass the model's num_prefix_tokens")
    patches = tokens[:, num_prefix_tokens:]
    return patches if patches.is_floating_point() else patches.float()

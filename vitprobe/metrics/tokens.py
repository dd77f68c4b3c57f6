"""Similarity between the patch tokens of one image (representation collapse)."""

from __future__ import annotations

import torch

from vitprobe.metrics._checks import patch_tokens


def unit_rows(x: torch.Tensor) -> torch.Tensor:
    """``x / ||x||`` along the last dimension, overflow-safe (scaled by max |x| first); 0 stays 0."""
    scale = x.abs().amax(dim=-1, keepdim=True)
    scaled = x / scale.clamp_min(torch.finfo(x.dtype).tiny)
    return scaled / torch.linalg.vector_norm(scaled, dim=-1, keepdim=True).clamp_min(
        torch.finfo(x.dtype).tiny)


def token_cosine_similarity(tokens: torch.Tensor, num_prefix_tokens: int = 1) -> torch.Tensor:
    """Mean off-diagonal pairwise cosine similarity of the patch tokens per image, (B,).

    With unit rows u_i of the n patch tokens and s = sum_i u_i:
    ``mean_{i != j} u_i . u_j = (|s|^2 - sum_i |u_i|^2) / (n (n - 1))``, O(n C) not O(n^2 C).
    """
    units = unit_rows(patch_tokens(tokens, num_prefix_tokens))
    n = units.shape[1]
    total = units.sum(dim=1)
    off_diagonal = (total * total).sum(dim=-1) - (units * units).sum(dim=(1, 2))
    return off_diagonal / (n * (n - 1))

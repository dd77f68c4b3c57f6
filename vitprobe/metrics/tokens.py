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

    With weights w_i = 1 / ||x_i|| of the n patch tokens (0 for a zero token, which then
    counts as similar to nothing), s = sum_i w_i x_i and m the number of non-zero tokens:
    ``mean_{i != j} cos(x_i, x_j) = (|s|^2 - m) / (n (n - 1))``, O(n C) not O(n^2 C). Two
    passes over the tokens: the norms, accumulated in float64 (no overflow or underflow for
    float32 and half-precision tokens at any scale), and s as one batched vector-matrix product.
    """
    patches = patch_tokens(tokens, num_prefix_tokens)
    work = patches if patches.dtype in (torch.float32, torch.float64) else patches.float()
    norms = torch.linalg.vector_norm(work, dim=-1, dtype=torch.float64)
    nonzero = norms > 0
    weights = torch.where(nonzero, norms.reciprocal(), 0.0).to(work.dtype)
    total = torch.bmm(weights.unsqueeze(1), work).squeeze(1).to(torch.float64)
    n = work.shape[1]
    return (((total * total).sum(dim=-1) - nonzero.sum(dim=-1)) / (n * (n - 1))).to(work.dtype)

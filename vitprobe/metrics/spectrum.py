"""Covariance spectra: streamed sums, covariance, and log singular values."""

from __future__ import annotations

import torch

from vitprobe.metrics._checks import check_rank, patch_tokens
from vitprobe.metrics._per_core import map_image_chunks

SPECTRUM_EPS = 1e-12
# Token elements per chunk of images on the CPU (2 MiB of float32: 6 images at ViT-S/16).
_CHUNK_ELEMENTS = 1 << 19


def moment_sums(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sums over the rows of ``x`` (n, C) in float64: ``(sum_i x_i, sum_i x_i x_i^T)``."""
    check_rank(x, 2, "features (n, C)")
    x64 = x.to(torch.float64)
    return x64.sum(dim=0), x64.T @ x64


def covariance_from_sums(total: torch.Tensor, outer: torch.Tensor, count: int | float) -> torch.Tensor:
    """Sample covariance from streamed sums: ``(S_xx - S_x S_x^T / n) / (n - 1)``, (C, C)."""
    count = float(count)
    if count < 2:
        return torch.full_like(outer, float("nan"))
    return (outer - torch.outer(total, total) / count) / (count - 1.0)


def log_singular_values(matrix: torch.Tensor) -> torch.Tensor:
    """``log(max(s_r, 1e-12))`` of the singular values s_1 >= s_2 >= ... over the last two dims."""
    values = torch.linalg.svdvals(matrix)
    return torch.log(values.clamp_min(SPECTRUM_EPS))


def token_covariance_log_spectrum(tokens: torch.Tensor, num_prefix_tokens: int = 1) -> torch.Tensor:
    """Log singular values of each image's patch-token covariance, (B, C), largest first.

    For the n patch tokens X (n, C) of one image, ``cov = X_c^T X_c / (n - 1)`` with X_c the
    column-centred tokens; its singular values are ``sigma(X_c)^2 / (n - 1)`` (padded with 0
    beyond rank min(n, C)); reported as ``log(max(s, 1e-12))``. Computed in float64 as the
    eigenvalues of the smaller Gram matrix (``X_c X_c^T`` or ``X_c^T X_c``, both hold
    ``sigma^2``): half the cost of an SVD of X_c; values below about 1e-16 of the largest are
    rounding noise (an SVD resolves them down to 1e-32), far under anything plotted.
    On a GPU the Gram matrices are formed there and their eigenvalues found on the CPU: a GPU
    solver takes the matrices one by one (64 of 196 x 196 in 102 ms on an H100, measured),
    where one LAPACK thread per core shares them out (benchmarks/README.md).
    """
    patches = patch_tokens(tokens, num_prefix_tokens)
    channels, n = patches.shape[-1], patches.shape[-2]

    def gram(chunk: torch.Tensor) -> torch.Tensor:
        x = chunk.to(torch.float64)
        centred = x - x.mean(dim=1, keepdim=True)
        return centred @ centred.transpose(1, 2) if n <= channels else centred.transpose(1, 2) @ centred

    def log_spectrum(grams: torch.Tensor) -> torch.Tensor:
        # Ascending eigenvalues of a PSD matrix; rounding can make the zero ones slightly negative.
        values = torch.linalg.eigvalsh(grams).flip(-1).clamp_min(0.0) / (n - 1)
        if values.shape[-1] < channels:
            values = torch.cat([values, values.new_zeros(grams.shape[0], channels - values.shape[-1])], dim=-1)
        return torch.log(values.clamp_min(SPECTRUM_EPS))

    if patches.device.type == "cpu":
        return map_image_chunks(lambda chunk: log_spectrum(gram(chunk)), patches, _CHUNK_ELEMENTS)
    grams = gram(patches).cpu()
    return map_image_chunks(log_spectrum, grams, _CHUNK_ELEMENTS).to(patches.device)

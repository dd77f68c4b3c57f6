"""Fourier analysis of token maps: relative log amplitude along the diagonal of the spectrum."""

from __future__ import annotations

import math
from functools import lru_cache

import torch

from vitprobe.metrics._checks import ShapeError, check_count, patch_grid, patch_tokens

AMPLITUDE_EPS = 1e-6


def fourier_frequencies(side: int) -> torch.Tensor:
    """Per-axis frequencies of :func:`fourier_delta_log_amplitude`, in units of pi, (ceil(h/2),).

    ``f[k] = 2k / h`` for ``k = 0 .. ceil(h/2) - 1``.
    """
    check_count(side, "side", "pass the number of patches along one side of the grid")
    count = (side + 1) // 2
    return torch.arange(count, dtype=torch.float32) * (2.0 / side)


@lru_cache(maxsize=16)
def _diagonal_dft_basis(side: int, device: torch.device = torch.device("cpu")) -> torch.Tensor:
    """Real and imaginary DFT rows of the diagonal frequencies (k, k), k < ceil(h/2), float64,
    (2 * ceil(h/2), h * h): ``F[k, k] = sum_{r,c} x[r, c] exp(-2 pi i k (r + c) / h)``."""
    k = torch.arange((side + 1) // 2, dtype=torch.float64)
    cells = torch.arange(side, dtype=torch.float64)
    phase = (2.0 * math.pi / side) * k[:, None, None] * (cells[:, None] + cells[None, :])
    return torch.cat([torch.cos(phase), -torch.sin(phase)]).reshape(2 * len(k), side * side).to(device)


def fourier_delta_log_amplitude(tokens: torch.Tensor, num_prefix_tokens: int = 1,
                                grid: tuple[int, int] | None = None) -> torch.Tensor:
    """Relative log amplitude along the spectrum's diagonal per image, (B, ceil(h/2)).

    Patch tokens (B, h*w, C) become maps (B, C, h, w); ``logA = log(|FFT2(x)| + 1e-6)``,
    shifted so frequency 0 sits at c = h // 2, averaged over channels (log before averaging);
    ``delta[b, k] = logA[b, c+k, c+k] - logA[b, c, c]`` for ``k = 0 .. ceil(h/2) - 1``.
    The grid must be square. After the shift, (c+k, c+k) holds frequency (k, k), so only those
    ceil(h/2) coefficients are computed, as one float64 product with their DFT rows.
    """
    patches = patch_tokens(tokens, num_prefix_tokens)
    n = patches.shape[1]
    h, w = patch_grid(n, grid)
    if h != w:
        raise ShapeError(f"Fourier diagonal needs a square patch grid, got {h}x{w}; "
                         "use a square input size")
    basis = _diagonal_dft_basis(h, patches.device)
    coefficients = torch.matmul(basis, patches.to(torch.float64))  # (B, 2K, C)
    real, imag = coefficients.chunk(2, dim=1)
    log_amp = torch.log(torch.hypot(real, imag) + AMPLITUDE_EPS).mean(dim=-1)
    return (log_amp - log_amp[:, :1]).to(patches.dtype)

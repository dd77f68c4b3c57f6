"""Fourier analysis of token maps: relative log amplitude along the diagonal of the spectrum."""

from __future__ import annotations

import torch

from vitprobe.metrics._checks import ShapeError, patch_grid, patch_tokens

AMPLITUDE_EPS = 1e-6


def fourier_frequencies(side: int) -> torch.Tensor:
    """Per-axis frequencies of :func:`fourier_delta_log_amplitude`, in units of pi, (ceil(h/2),).

    ``f[k] = 2k / h`` for ``k = 0 .. ceil(h/2) - 1``.
    """
    count = (side + 1) // 2
    return torch.arange(count, dtype=torch.float32) * (2.0 / side)


def fourier_delta_log_amplitude(tokens: torch.Tensor, num_prefix_tokens: int = 1,
                                grid: tuple[int, int] | None = None) -> torch.Tensor:
    """Relative log amplitude along the spectrum's diagonal per image, (B, ceil(h/2)).

    Patch tokens (B, h*w, C) become maps (B, C, h, w); ``logA = log(|FFT2(x)| + 1e-6)``,
    shifted so frequency 0 sits at c = h // 2, averaged over channels (log before averaging);
    ``delta[b, k] = logA[b, c+k, c+k] - logA[b, c, c]`` for ``k = 0 .. ceil(h/2) - 1``.
    The grid must be square.
    """
    patches = patch_tokens(tokens, num_prefix_tokens)
    batch, n, channels = patches.shape
    h, w = patch_grid(n, grid)
    if h != w:
        raise ShapeError(f"Fourier diagonal needs a square patch grid, got {h}x{w}; "
                         "use a square input size")
    maps = patches.transpose(1, 2).reshape(batch, channels, h, w)
    log_amp = torch.log(torch.fft.fft2(maps).abs() + AMPLITUDE_EPS)
    log_amp = torch.fft.fftshift(log_amp, dim=(-2, -1)).mean(dim=1)
    centre = h // 2
    steps = torch.arange(centre, h, device=log_amp.device)
    diagonal = log_amp[:, steps, steps]
    return diagonal - diagonal[:, :1]

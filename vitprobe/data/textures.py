"""Periodic textures as pattern values in [0, 1] on normalised image coordinates.

Each function takes u, v (pixel centres in units of the image side, so the pattern is the
same at every resolution), the period (also in image sides) and a numpy Generator for its
random phase or layout, and returns the pattern, about half of it near 1. Edges are soft
(a tanh of a sine) so that a period of 3-4 pixels still samples cleanly at 32 px.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

TextureFn = Callable[[np.ndarray, np.ndarray, float, np.random.Generator], np.ndarray]

SHARPNESS = 2.5
NOISE_WAVES = 8
TAU = 2 * math.pi


def square_wave(t: np.ndarray) -> np.ndarray:
    """0.5 + 0.5 tanh(SHARPNESS sin(2 pi t)): a soft square wave of period 1 with duty 1/2."""
    return 0.5 + 0.5 * np.tanh(SHARPNESS * np.sin(TAU * t))


def horizontal_stripes(u: np.ndarray, v: np.ndarray, period: float,
                       rng: np.random.Generator) -> np.ndarray:
    """square_wave(v / period + phase)."""
    return square_wave(v / period + rng.random())


def vertical_stripes(u: np.ndarray, v: np.ndarray, period: float,
                     rng: np.random.Generator) -> np.ndarray:
    """square_wave(u / period + phase)."""
    return square_wave(u / period + rng.random())


def diagonal_stripes(u: np.ndarray, v: np.ndarray, period: float,
                     rng: np.random.Generator) -> np.ndarray:
    """square_wave((u +- v) / (sqrt(2) period) + phase), rising or falling at random."""
    sign = 1.0 if rng.random() < 0.5 else -1.0
    return square_wave((u + sign * v) / (period * math.sqrt(2)) + rng.random())


def checkerboard(u: np.ndarray, v: np.ndarray, period: float,
                 rng: np.random.Generator) -> np.ndarray:
    """0.5 + 0.5 s(u) s(v), s(x) = tanh(SHARPNESS sin(2 pi (x / period + phase)))."""
    su = np.tanh(SHARPNESS * np.sin(TAU * (u / period + rng.random())))
    sv = np.tanh(SHARPNESS * np.sin(TAU * (v / period + rng.random())))
    return 0.5 + 0.5 * su * sv


def dots(u: np.ndarray, v: np.ndarray, period: float, rng: np.random.Generator) -> np.ndarray:
    """Discs of radius 0.4 period (area share pi 0.16 ~ 1/2) on a square lattice."""
    du = np.mod(u / period + rng.random(), 1.0) - 0.5
    dv = np.mod(v / period + rng.random(), 1.0) - 0.5
    return 0.5 + 0.5 * np.tanh((0.4 - np.hypot(du, dv)) * 4 * SHARPNESS)


def grid(u: np.ndarray, v: np.ndarray, period: float, rng: np.random.Generator) -> np.ndarray:
    """Lines of width 0.3 period along both axes (covered share 1 - 0.7^2 ~ 1/2)."""
    du = np.abs(np.mod(u / period + rng.random(), 1.0) - 0.5)
    dv = np.abs(np.mod(v / period + rng.random(), 1.0) - 0.5)
    return 0.5 + 0.5 * np.tanh((np.maximum(du, dv) - 0.35) * 4 * SHARPNESS)


def concentric_rings(u: np.ndarray, v: np.ndarray, period: float,
                     rng: np.random.Generator) -> np.ndarray:
    """square_wave(|(u, v) - c| / period + phase) around a centre c in [-0.5, 1.5]^2."""
    cu, cv = rng.uniform(-0.5, 1.5, size=2).tolist()
    return square_wave(np.hypot(u - cu, v - cv) / period + rng.random())


def band_noise(u: np.ndarray, v: np.ndarray, period: float,
               rng: np.random.Generator) -> np.ndarray:
    """0.5 + 0.5 tanh(SHARPNESS w / sqrt(J / 2)), w = sum of J = NOISE_WAVES plane waves
    cos(2 pi f_j (u cos a_j + v sin a_j) + phase_j), random directions a_j and phases,
    f_j in [0.8, 1.25] / period: an isotropic noise with no low frequencies."""
    total = np.zeros_like(u)
    for _ in range(NOISE_WAVES):
        angle = rng.uniform(0, math.pi)
        frequency = TAU * rng.uniform(0.8, 1.25) / period
        total += np.cos(frequency * math.cos(angle) * u + frequency * math.sin(angle) * v
                        + rng.uniform(0, TAU))
    return 0.5 + 0.5 * np.tanh(SHARPNESS * total / math.sqrt(NOISE_WAVES / 2))


TEXTURES: dict[str, TextureFn] = {
    "horizontal_stripes": horizontal_stripes,
    "vertical_stripes": vertical_stripes,
    "diagonal_stripes": diagonal_stripes,
    "checkerboard": checkerboard,
    "dots": dots,
    "grid": grid,
    "concentric_rings": concentric_rings,
    "noise": band_noise,
}

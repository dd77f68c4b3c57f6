"""Per-step schedules: cosine with linear warm-up (lr), cosine (weight decay, EMA momentum), and a
constant learning rate with one drop after its warm-up (SimMIM's ViT recipe)."""

from __future__ import annotations

import math

import numpy as np


def cosine_schedule(start: float, end: float, total_steps: int, warmup_steps: int = 0,
                    warmup_start: float = 0.0) -> np.ndarray:
    """Value at every optimiser step ``i = 0 .. total_steps - 1``.

    Warm-up (``i < W``): ``warmup_start + (start - warmup_start) * i / W``.
    Then ``end + (start - end) * (1 + cos(pi * (i - W) / (T - W))) / 2``, so the first
    step after warm-up takes ``start`` and the value approaches ``end`` at the last step.
    """
    _check_warmup(total_steps, warmup_steps)
    i = np.arange(total_steps, dtype=np.float64)
    decay_steps = total_steps - warmup_steps
    cosine = end + 0.5 * (start - end) * (1.0 + np.cos(math.pi * (i - warmup_steps) / decay_steps))
    return _after_warmup(cosine, start, warmup_steps, warmup_start)


def step_schedule(start: float, total_steps: int, warmup_steps: int, drop_at: float, factor: float,
                  warmup_start: float = 0.0) -> np.ndarray:
    """Value at every optimiser step: cosine_schedule's linear warm-up, then ``start`` until step
    ``D = ceil(drop_at * T)`` and ``start * factor`` from it on (SimMIM's ViT-B: x0.1 at epoch
    700 of 800, ``drop_at`` 0.875); the drop must come after the warm-up, ``W < D <= T``."""
    _check_warmup(total_steps, warmup_steps)
    drop = math.ceil(drop_at * total_steps)
    if not warmup_steps < drop <= total_steps:
        raise ValueError(f"a drop at step {drop} (of {total_steps}) must come after the {warmup_steps} "
                         "warm-up steps and before the end")
    i = np.arange(total_steps, dtype=np.float64)
    return _after_warmup(np.where(i < drop, start, start * factor), start, warmup_steps, warmup_start)


def _check_warmup(total_steps: int, warmup_steps: int) -> None:
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    if not 0 <= warmup_steps < total_steps:
        raise ValueError(f"warm-up of {warmup_steps} steps must be shorter than the "
                         f"{total_steps} steps of the run")


def _after_warmup(values: np.ndarray, start: float, warmup_steps: int, warmup_start: float) -> np.ndarray:
    """``values`` with steps ``i < W`` replaced by ``warmup_start + (start - warmup_start) * i / W``."""
    i = np.arange(len(values), dtype=np.float64)
    ramp = warmup_start + (start - warmup_start) * i / max(warmup_steps, 1)
    return np.where(i < warmup_steps, ramp, values)

"""Per-step schedules: cosine with linear warm-up (lr), cosine (weight decay, EMA momentum)."""

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
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    if not 0 <= warmup_steps < total_steps:
        raise ValueError(f"warm-up of {warmup_steps} steps must be shorter than the "
                         f"{total_steps} steps of the run")
    i = np.arange(total_steps, dtype=np.float64)
    ramp = warmup_start + (start - warmup_start) * i / max(warmup_steps, 1)
    decay_steps = total_steps - warmup_steps
    cosine = end + 0.5 * (start - end) * (1.0 + np.cos(math.pi * (i - warmup_steps) / decay_steps))
    return np.where(i < warmup_steps, ramp, cosine)

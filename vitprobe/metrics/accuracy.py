"""The standard error of an accuracy measured on a finite held-out set."""

from __future__ import annotations

import numpy as np

from vitprobe.metrics._checks import MetricInputError, check_positive


def accuracy_standard_error(accuracy: np.ndarray | float, n: int, scale: float = 1.0) -> np.ndarray:
    """Standard error of an accuracy over ``n`` held-out images, in the accuracy's units
    (``scale`` 100 for percent), by Agresti and Coull's "plus four" estimate: with
    ``p~ = (p n + 2) / (n + 4)``, ``se = sqrt(p~ (1 - p~) / (n + 4))``. Close to the plain
    ``sqrt(p (1 - p) / n)`` for many images, it does not vanish at 0% or 100%, where the plain
    one would call 1 of 1 images right an exact 100%. NaN where ``n`` < 1. An accuracy beyond
    [0, scale] by more than rounding (1e-6 of scale) is a MetricInputError; within it, clipped."""
    check_positive(scale, "scale", "1 for accuracies in [0, 1], 100 for percent")
    p = np.asarray(accuracy, dtype=float) / scale
    if np.any((p < -1e-6) | (p > 1.0 + 1e-6)):
        raise MetricInputError(f"accuracy must lie in [0, scale={scale:g}], got {np.asarray(accuracy).tolist()!r}; "
                               "pass scale=100 for percent")
    p = np.clip(p, 0.0, 1.0)
    if n < 1:
        return np.full_like(p, np.nan)
    shrunk = (p * n + 2.0) / (n + 4.0)
    return scale * np.sqrt(shrunk * (1.0 - shrunk) / (n + 4.0))

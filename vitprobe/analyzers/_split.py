"""A train / held-out split decided by each sample's index alone (batch order and sharding
do not matter)."""

from __future__ import annotations

import numpy as np
import torch

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser: a well-mixed 64-bit hash of each uint64."""
    x = x + _GOLDEN
    x = (x ^ (x >> np.uint64(30))) * _MIX1
    x = (x ^ (x >> np.uint64(27))) * _MIX2
    return x ^ (x >> np.uint64(31))


def heldout_mask(index: torch.Tensor, fraction: float, seed: int = 0) -> torch.Tensor:
    """True for the samples held out: ``u(index, seed) < fraction`` with u a uniform hash in [0, 1)."""
    idx = index.detach().cpu().numpy().astype(np.int64).view(np.uint64)
    with np.errstate(over="ignore"):
        mixed = _splitmix64(_splitmix64(idx) ^ np.uint64(int(seed) & 0xFFFFFFFFFFFFFFFF))  # NumPy ints too
    uniform = (mixed >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    return torch.from_numpy(uniform < fraction)

"""Seeding the global random generators for one block of work, and nothing after it."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from vitprobe.errors import ConfigError, is_whole

SEED_LIMIT = 2**63  # torch's generators take seeds below 2**64; training configs keep them signed


def check_seed(value: object) -> int:
    """``int(value)`` for a whole number in ``[0, 2**63)``; else a ConfigError naming --seed."""
    if not is_whole(value) or not 0 <= value < SEED_LIMIT:  # type: ignore[operator]
        raise ConfigError(f"--seed (Python: seed=) must be a whole number in [0, 2**63), got {value!r}")
    return int(value)  # type: ignore[call-overload]


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed Python's, NumPy's and torch's global generators (the CPU one, and those of the CUDA
    devices already initialised) with ``seed`` inside the block; restore the states they had
    before it on leaving, so a caller's own random draws (e.g. in a notebook) do not depend on
    having called vitprobe. A device first initialised inside the block keeps its own default
    seed (``torch.manual_seed`` would queue ``seed`` for it, outliving the block)."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=cuda):
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.default_generator.manual_seed(seed)
        for device in cuda:
            torch.cuda.default_generators[device].manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)

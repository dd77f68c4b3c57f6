"""Fixtures for the analyzer tests: a synthetic model description and unequal batches."""

from __future__ import annotations

import pytest
import torch
from analyzer_inputs import make_batch, make_info

from vitprobe.capture import ModelInfo


@pytest.fixture(scope="session")
def info() -> ModelInfo:
    return make_info()


@pytest.fixture(scope="session")
def batches() -> list[dict]:
    """Four batches of unequal sizes, indices shuffled across them."""
    order = torch.randperm(24, generator=torch.Generator().manual_seed(7)).tolist()
    sizes = [5, 9, 3, 7]
    out, start = [], 0
    for i, size in enumerate(sizes):
        out.append(make_batch(order[start:start + size], seed=100 + i))
        start += size
    return out

"""Batches of dataset items with torch's default collate."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from vitprobe.errors import ConfigError


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool = False, num_workers: int = 0,
                seed: int = 0, sampler: Sampler | None = None) -> DataLoader:
    """A DataLoader over ``dataset`` that keeps every item (no drop_last).

    With ``shuffle`` the order comes from a torch Generator seeded with ``seed``, so two
    loaders with the same seed give the same batches. ``sampler`` (e.g. a
    DistributedSampler) replaces shuffling and cannot be combined with it.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch size must be a whole number >= 1, got {batch_size!r}")
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ConfigError(f"num_workers must be a whole number >= 0, got {num_workers!r}")
    if shuffle and sampler is not None:
        raise ConfigError("shuffle and a sampler exclude each other; shuffle in the sampler instead")
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, sampler=sampler,
                      num_workers=num_workers, generator=generator,
                      persistent_workers=num_workers > 0)

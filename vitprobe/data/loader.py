"""Batches of dataset items with torch's default collate."""

from __future__ import annotations

from torch.utils.data import DataLoader, Dataset, Sampler

from vitprobe.errors import check_whole


def make_loader(dataset: Dataset, batch_size: int, num_workers: int = 0,
                sampler: Sampler | None = None) -> DataLoader:
    """A DataLoader over ``dataset`` in its order (or ``sampler``'s, e.g. one process's shard)
    that keeps every item (no drop_last)."""
    batch_size = check_whole(batch_size, "batch size")
    num_workers = check_whole(num_workers, "num_workers", minimum=0)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      persistent_workers=num_workers > 0)

"""Batches of dataset items with torch's default collate, after checking that they stack."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from torch.utils.data import DataLoader, Dataset, Sampler, default_collate

from vitprobe.errors import DataError, check_whole


def collate_items(items: Sequence[Mapping[str, Any]], name: str = "dataset") -> Any:
    """``default_collate(items)``; DataError naming the item when the images differ in shape
    (torch's own error names neither the item nor the fix)."""
    keys = [sorted(item) for item in items if isinstance(item, Mapping)]
    for position, item_keys in enumerate(keys):
        if item_keys != keys[0]:
            where = f"index {items[position]['index']}" if "index" in items[position] else f"batch place {position}"
            raise DataError(f"dataset {name}: the item at {where} has keys {item_keys} and the batch's first "
                            f"{keys[0]}; give every item the same keys (all with labels, or none)")
    shapes = [tuple(getattr(item.get("image"), "shape", ())) for item in items if isinstance(item, Mapping)]
    for position, shape in enumerate(shapes):
        if shape != shapes[0]:
            where = f"index {items[position]['index']}" if "index" in items[position] else f"batch place {position}"
            raise DataError(f"dataset {name}: the image of the item at {where} has shape {list(shape)} and the "
                            f"batch's first {list(shapes[0])}; give every image the model's size (resize it "
                            "in the dataset)")
    return default_collate(items)


def make_loader(dataset: Dataset, batch_size: int, num_workers: int = 0,
                sampler: Sampler | None = None) -> DataLoader:
    """A DataLoader over ``dataset`` in its order (or ``sampler``'s, e.g. one process's shard)
    that keeps every item (no drop_last)."""
    batch_size = check_whole(batch_size, "batch size")
    num_workers = check_whole(num_workers, "num_workers", minimum=0)
    name = str(getattr(dataset, "spec", None) or type(dataset).__name__)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      persistent_workers=num_workers > 0, collate_fn=functools.partial(collate_items, name=name))

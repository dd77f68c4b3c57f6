"""Data a user hands to ``analyze`` as Python objects (a Dataset of their own, a torch Subset, a
DataLoader with its own sampler or collate_fn): its first item, to check, and the description
the protocol records, which names the images actually read (``size``) and how they were
chosen from the dataset (``sampled``)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, SequentialSampler, Subset

from vitprobe.errors import ConfigError

ITEM_HELP = ("items must be (image, label) pairs, as torchvision's datasets give, or dicts with an 'image' "
             "tensor (and 'index', 'labels': {name: int}, 'mask')")
PAIR_LABEL = "class"  # the label name of an (image, label) pair


class ImagePairs(Dataset):
    """A dataset of ``(image, label)`` pairs (torchvision's ImageFolder or CIFAR with a tensor
    transform, a TensorDataset) or of ``(image,)`` tuples, read as vitprobe items:
    ``{"image": image, "index": i, "labels": {"class": label}}``."""

    def __init__(self, pairs: Dataset) -> None:
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.item(index, self.pairs[index])

    @staticmethod
    def item(index: int, pair: Sequence[Any]) -> dict[str, Any]:
        """The item dict of the pair (or 1-tuple) at ``index``."""
        item: dict[str, Any] = {"image": pair[0], "index": index}
        if len(pair) == 2:
            item["labels"] = {PAIR_LABEL: pair[1]}
        return item


def dataset_name(dataset: Any) -> str:
    """How messages and protocols name a dataset: its spec (vitprobe's own), else its class (of
    the pairs an :class:`ImagePairs` reads)."""
    if isinstance(dataset, ImagePairs):
        return dataset_name(dataset.pairs)
    return str(getattr(dataset, "spec", None) or type(dataset).__name__)


def as_items(dataset: Any) -> tuple[Any, Mapping[str, Any] | None]:
    """``dataset`` itself, or wrapped in :class:`ImagePairs` when its first item is a tuple or
    list of an image (tensor or array) and at most one label; with that first item as an item
    dict holding an "image", read once (None for an empty or unindexable dataset or any other
    item; errors the dataset's own ``__getitem__`` raises are not caught)."""
    if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")) or len(dataset) == 0:
        return dataset, None
    first = dataset[0]
    if (isinstance(first, (tuple, list)) and len(first) in (1, 2)
            and isinstance(first[0], (torch.Tensor, np.ndarray))):
        pairs = ImagePairs(dataset)
        return pairs, pairs.item(0, first)
    return dataset, first if isinstance(first, Mapping) and "image" in first else None


def loader_sampling(loader: DataLoader) -> str | None:
    """None when ``loader`` reads its whole dataset once, in order; else how it chooses
    instead (its sampler's or batch sampler's class, and ``drop_last``)."""
    batches = loader.batch_sampler
    if type(batches) is not BatchSampler:
        return f"batch_sampler {type(batches).__name__}"
    how = [] if isinstance(batches.sampler, SequentialSampler) else [f"sampler {type(batches.sampler).__name__}"]
    return ", ".join(how + (["drop_last"] if batches.drop_last else [])) or None


def first_item(data: Dataset | DataLoader) -> Mapping[str, Any] | None:
    """The first item of a Dataset; of a DataLoader (whose ``collate_fn`` may build the item
    dicts), the first image of its first batch with its labels, mask and index."""
    if not isinstance(data, DataLoader):
        return as_items(data)[1]
    if data.batch_sampler is None:
        raise ConfigError("the DataLoader has batch_size=None and yields single items; give it a batch_size")
    batch = next(iter(data), None)
    if batch is None:
        name = dataset_name(data.dataset)
        if data.drop_last and data.batch_size is not None:
            raise ConfigError(f"the DataLoader over {name} yields no batch: drop_last=True drops a last batch "
                              f"smaller than batch_size={data.batch_size}, and that is all of it; use "
                              "drop_last=False or a smaller batch_size")
        raise ConfigError(f"the DataLoader over {name} yields no batch; give it images")
    if not (isinstance(batch, Mapping) and isinstance(batch.get("image"), torch.Tensor) and batch["image"].dim() == 4):
        raise ConfigError(f"the DataLoader's batches are {type(batch).__name__}s, not dicts with an 'image' "
                          "tensor (B, 3, H, W) (and 'labels': {name: (B,) tensor}, ...); pass a Dataset of pairs "
                          "itself (vitprobe batches it), or give the DataLoader a collate_fn that builds such dicts")
    item: dict[str, Any] = {"image": batch["image"][0]}
    if isinstance(batch.get("labels"), Mapping):
        item["labels"] = {k: v[0] for k, v in batch["labels"].items()}
    elif "labels" in batch:
        item["labels"] = batch["labels"]
    for key, value in batch.items():  # mask, index, and keys the check warns about (e.g. 'label')
        if key not in ("image", "labels"):
            item[key] = value[0] if isinstance(value, (torch.Tensor, list, tuple)) and len(value) else value
    return item


def describe_data(data: Dataset | DataLoader, first: Mapping[str, Any] | None
                  ) -> tuple[dict[str, Any], bool, list[str]]:
    """The protocol's description of ``data``, whether its items carry masks, and its label
    names (a vitprobe dataset says so; others are read off ``first``). A dataset of one's own
    is described by its class, size, folder (``root``, as torchvision's datasets keep it) and a
    hash of its first image; a Subset, or a DataLoader
    that samples, by the dataset it reads from, with ``size`` the images read and ``sampled``
    how they were chosen (that dataset's class counts are dropped: they count other images)."""
    dataset = data.dataset if isinstance(data, DataLoader) else data
    has_masks = getattr(dataset, "has_masks", None)
    label_names = getattr(dataset, "label_names", None)
    if has_masks is None or label_names is None:
        if first is None:
            empty = hasattr(dataset, "__len__") and len(dataset) == 0
            raise ConfigError(f"dataset {dataset_name(dataset)} is empty; give it images" if empty
                              else f"dataset {dataset_name(dataset)}: {_item_help(dataset)}")
        has_masks = "mask" in first if has_masks is None else has_masks
        labels = first.get("labels", {})
        label_names = (list(labels) if isinstance(labels, Mapping) else []) if label_names is None else label_names
    facts = _describe(dataset, first)
    how = loader_sampling(data) if isinstance(data, DataLoader) else None
    if how is not None:
        facts = _sampled(facts, sum(len(batch) for batch in data.batch_sampler), how)
    return facts, bool(has_masks), list(label_names)


def _item_help(dataset: Any) -> str:
    """What a dataset whose items vitprobe cannot read should give: the fix for PIL images (a
    torchvision dataset whose transform stops before ``ToTensor``), else :data:`ITEM_HELP`."""
    first = dataset[0] if hasattr(dataset, "__getitem__") else None
    image = (first[0] if isinstance(first, (tuple, list)) and first
             else first.get("image") if isinstance(first, Mapping) else None)
    if type(image).__module__.startswith("PIL."):
        return ("its images are PIL images, not tensors; end its transform with transforms.ToTensor() and "
                "transforms.Normalize(mean, std) (the model's; ImageNet's for the published checkpoints)")
    return ITEM_HELP


def _describe(dataset: Any, first: Mapping[str, Any] | None) -> dict[str, Any]:
    if isinstance(dataset, ImagePairs):
        items = (f"(image, label) pairs, the label named {PAIR_LABEL!r}" if first is not None and "labels" in first
                 else "(image,) tuples")
        return {**_describe(dataset.pairs, first), "items": items}
    if isinstance(dataset, Subset):
        indices = np.asarray(list(dataset.indices), dtype=np.int64)
        inner = dataset.dataset  # its first item is read only to hash a dataset that cannot describe itself
        inner_first = None if callable(getattr(inner, "describe", None)) else as_items(inner)[1]
        facts = _sampled(_describe(inner, inner_first), len(indices), "Subset")
        return {**facts, "sampled": {**facts["sampled"],
                                     "indices_sha256": hashlib.sha256(indices.tobytes()).hexdigest()[:16]}}
    describe = getattr(dataset, "describe", None)
    if callable(describe):
        return describe()
    facts: dict[str, Any] = {"spec": type(dataset).__name__, "size": len(dataset)}
    root = getattr(dataset, "root", None)  # torchvision's datasets keep the folder they read
    if isinstance(root, (str, os.PathLike)):
        facts["root"] = os.fspath(root)
    if first is not None and isinstance(first.get("image"), (torch.Tensor, np.ndarray)):
        pixels = torch.as_tensor(first["image"]).detach().cpu().contiguous().numpy().tobytes()
        facts["first_image_sha256"] = hashlib.sha256(pixels).hexdigest()[:16]
    return facts


def _sampled(facts: dict[str, Any], size: int, how: str) -> dict[str, Any]:
    """``facts`` of a whole dataset, narrowed to the ``size`` images that ``how`` chose."""
    kept = {k: v for k, v in facts.items() if k not in ("class_counts", "size")}
    return {**kept, "size": size, "sampled": {"by": how, "of": facts.get("size")}}

"""make_loader and torch's default collate over every dataset kind; describe() protocols."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from torch.utils.data import SequentialSampler

from vitprobe.data import make_loader, resolve_dataset
from vitprobe.errors import ConfigError, DataError


def _datasets(image_folder: Path, voc_root: Path) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the trees hold unreadable files on purpose
        return {
            "synthetic": resolve_dataset("synthetic:10", 32),
            "digits": resolve_dataset("digits", 32),
            "folder": resolve_dataset(f"folder:{image_folder}", 32),
            "voc": resolve_dataset(f"voc:{voc_root}", 32),
        }


def test_every_kind_collates_into_batches(image_folder: Path, voc_root: Path) -> None:
    for kind, dataset in _datasets(image_folder, voc_root).items():
        batches = list(make_loader(dataset, batch_size=3))
        sizes = [len(batch["index"]) for batch in batches]
        assert sum(sizes) == min(len(dataset), sum(sizes)) and max(sizes) <= 3
        batch = batches[0]
        assert batch["image"].shape == (sizes[0], 3, 32, 32), kind
        assert batch["index"].tolist() == list(range(sizes[0]))
        assert set(batch["labels"]) == set(dataset.label_names)
        for name, values in batch["labels"].items():
            assert values.dtype == torch.int64 and values.shape == (sizes[0],)
            assert values.max() < dataset.num_classes[name]
        assert ("mask" in batch) == dataset.has_masks
        if dataset.has_masks:
            assert batch["mask"].shape == (sizes[0], 32, 32) and batch["mask"].dtype == torch.uint8
        protocol = dataset.describe()
        assert json.loads(json.dumps(protocol)) == protocol
        assert protocol["kind"] == kind and protocol["size"] == len(dataset)
        assert protocol["image_size"] == 32 and "mean" in protocol["normalisation"]


def test_batches_cover_every_item_in_order() -> None:
    dataset = resolve_dataset("synthetic:20", 16)
    plain = make_loader(dataset, batch_size=6)
    assert torch.cat([b["index"] for b in plain]).tolist() == list(range(20))


def test_worker_processes_give_the_same_batches() -> None:
    dataset = resolve_dataset("synthetic:6", 16)
    in_process = list(make_loader(dataset, batch_size=4))
    in_worker = list(make_loader(dataset, batch_size=4, num_workers=1))
    for a, b in zip(in_process, in_worker, strict=True):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])


def test_loader_arguments_are_checked() -> None:
    dataset = resolve_dataset("synthetic:4", 16)
    sampled = make_loader(dataset, batch_size=2, sampler=SequentialSampler(dataset))
    assert len(sampled) == 2
    for kwargs in ({"batch_size": 0}, {"batch_size": 2.5}, {"batch_size": True}, {"batch_size": 2, "num_workers": -1},
                   {"batch_size": 2, "num_workers": None}):
        with pytest.raises(ConfigError):
            make_loader(dataset, **kwargs)


def test_the_loader_reads_in_the_samplers_order_and_names_the_datasets_spec() -> None:
    picked = make_loader(resolve_dataset("synthetic:6", 16), batch_size=2, sampler=[5, 0, 3])
    assert torch.cat([b["index"] for b in picked]).tolist() == [5, 0, 3]

    class Uneven(torch.utils.data.Dataset):
        spec = "custom:uneven"

        def __len__(self) -> int:
            return 2

        def __getitem__(self, index: int) -> dict:
            return {"image": torch.zeros(3, 4 + 4 * index, 4), "index": index}

    with pytest.raises(DataError, match=r"^dataset custom:uneven: the image of the item at index 1 has shape"):
        list(make_loader(Uneven(), batch_size=2))


def test_items_with_keys_in_another_order_collate_and_a_mismatch_names_its_batch_place() -> None:
    from vitprobe.data.loader import collate_items

    batch = collate_items([{"image": torch.zeros(3, 4, 4), "index": 0}, {"index": 1, "image": torch.ones(3, 4, 4)}])
    assert batch["index"].tolist() == [0, 1] and batch["image"][1].eq(1).all()
    items = [{"image": torch.zeros(3, 4, 4)} for _ in range(3)]  # items without an index
    items[2] = {"image": torch.zeros(3, 8, 8)}
    with pytest.raises(DataError, match=r"^dataset mine: the image of the item at batch place 2 has shape \[3, 8, 8\] "
                                        r"and the batch's first \[3, 4, 4\]"):
        collate_items(items, name="mine")
    items[2] = {"image": torch.zeros(3, 4, 4), "label": 1}
    with pytest.raises(DataError, match=r"^dataset dataset: the item at batch place 2 has keys \['image', 'label'\]"):
        collate_items(items)


def test_the_default_normalisation_is_imagenets() -> None:
    protocol = resolve_dataset("synthetic:2", 16).describe()
    assert protocol["normalisation"] == {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}

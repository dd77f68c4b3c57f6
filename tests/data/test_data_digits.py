"""digits: scikit-learn's 8 x 8 digits, upscaled, 3 channels, stratified train/val."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from data_trees import RAW
from sklearn.datasets import load_digits

from vitprobe.data import resolve_dataset
from vitprobe.errors import DataError


def _bilinear(small: np.ndarray, size: int) -> np.ndarray:
    """Half-pixel-centred bilinear upscaling: output pixel o samples the source at
    (o + 0.5) * n / size - 0.5, clamped to the edge pixels."""
    n = small.shape[0]
    src = np.clip((np.arange(size) + 0.5) * n / size - 0.5, 0, n - 1)
    low = np.floor(src).astype(int)
    high = np.minimum(low + 1, n - 1)
    w = src - low
    rows = small[low] * (1 - w)[:, None] + small[high] * w[:, None]
    return rows[:, low] * (1 - w) + rows[:, high] * w


def test_items_are_upscaled_digits() -> None:
    reference = load_digits()
    dataset = resolve_dataset("digits", 32, **RAW)
    assert len(dataset) == len(reference.target) == 1797
    assert dataset.label_names == ["digit"] and dataset.num_classes == {"digit": 10}
    assert not dataset.has_masks
    for index in (0, 17, 1796):
        item = dataset[index]
        assert set(item) == {"image", "index", "labels"}
        assert item["labels"] == {"digit": int(reference.target[index])}
        image = item["image"]
        assert image.shape == (3, 32, 32)
        assert torch.equal(image[0], image[1]) and torch.equal(image[0], image[2])
        expected = _bilinear(reference.images[index] / 16, 32)
        np.testing.assert_allclose(image[0].numpy(), expected, atol=1e-5)
    assert torch.equal(dataset[5]["image"], resolve_dataset("digits", 32, **RAW)[5]["image"])


def test_train_and_val_partition_every_class() -> None:
    train = resolve_dataset("digits", 16, split="train")
    val = resolve_dataset("digits", 16, split="val")
    assert len(train) + len(val) == 1797
    train_counts = np.array(list(train.describe()["class_counts"]["digit"].values()))
    val_counts = np.array(list(val.describe()["class_counts"]["digit"].values()))
    share = val_counts / (train_counts + val_counts)
    assert np.all(np.abs(share - 0.2) < 0.02)
    with pytest.raises(DataError, match="unknown split"):
        resolve_dataset("digits", 16, split="test")

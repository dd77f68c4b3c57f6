"""synthetic: determinism, balance, independence, exact masks, frequency content."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from vitprobe.data import SHAPE_NAMES, TEXTURE_NAMES, render_synthetic, resolve_dataset
from vitprobe.data.synthetic import BLOCK, labels_for, render_scene, scene_for
from vitprobe.data.textures import TEXTURES
from vitprobe.errors import DataError


def _low_frequency_share(image: np.ndarray, cycles: float) -> float:
    """Share of the non-constant power below ``cycles`` per image side (radially)."""
    power = np.abs(np.fft.fft2(image - image.mean())) ** 2
    freq = np.fft.fftfreq(image.shape[0]) * image.shape[0]
    radius = np.hypot(*np.meshgrid(freq, freq))
    return float(power[radius < cycles].sum() / power.sum())


def test_same_seed_same_tensors_other_index_or_seed_differs() -> None:
    first = resolve_dataset("synthetic:20:7", 32)
    second = resolve_dataset("synthetic:20:7", 32)
    other_seed = resolve_dataset("synthetic:20:8", 32)
    for index in (0, 5, 19):
        a, b = first[index], second[index]
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
        assert a["labels"] == b["labels"]
        assert not torch.equal(a["image"], first[index + 1 if index < 19 else 0]["image"])
        assert not torch.equal(a["image"], other_seed[index]["image"])


def test_val_split_is_an_independent_stream() -> None:
    train = resolve_dataset("synthetic:8", 32, split="train")
    plain = resolve_dataset("synthetic:8", 32)
    val = resolve_dataset("synthetic:8", 32, split="val")
    assert torch.equal(train[3]["image"], plain[3]["image"])
    assert not any(torch.equal(val[i]["image"], train[i]["image"]) for i in range(8))
    with pytest.raises(DataError, match="unknown split 'test'"):
        resolve_dataset("synthetic:8", 32, split="test")


def test_labels_exactly_balanced_and_independent() -> None:
    n = 3 * BLOCK
    pairs = np.array([labels_for(i, seed=3) for i in range(n)])
    joint = np.zeros((len(SHAPE_NAMES), len(TEXTURE_NAMES)), dtype=int)
    np.add.at(joint, (pairs[:, 0], pairs[:, 1]), 1)
    assert (joint == 3).all()  # every (shape, texture) pair equally often: chi-square = 0
    assert len(SHAPE_NAMES) >= 8 and len(TEXTURE_NAMES) >= 8
    # the order inside a block is shuffled, not a fixed cycle
    assert not np.array_equal(pairs[:BLOCK], pairs[BLOCK:2 * BLOCK])


@pytest.mark.parametrize("n", [1, 100, 130])
def test_class_counts_match_the_labels(n: int) -> None:
    dataset = resolve_dataset(f"synthetic:{n}:5", 32)
    pairs = np.array([labels_for(i, seed=5) for i in range(n)])
    counts = dataset.describe()["class_counts"]
    assert list(counts["shape"].values()) == np.bincount(pairs[:, 0], minlength=8).tolist()
    assert list(counts["texture"].values()) == np.bincount(pairs[:, 1], minlength=8).tolist()
    assert dataset[n - 1]["labels"] == {"shape": int(pairs[-1, 0]), "texture": int(pairs[-1, 1])}


def test_background_texture_differs_and_all_pairs_occur() -> None:
    scenes = [scene_for(i, seed=0) for i in range(2 * BLOCK)]
    assert all(s.background_texture != s.texture for s in scenes)
    assert {s.background_texture for s in scenes} == set(range(len(TEXTURE_NAMES)))


def _distance_to_segment(pixels: np.ndarray, colors) -> np.ndarray:
    c0, c1 = (np.asarray(c) * 255 for c in colors)
    t = np.clip((pixels - c0) @ (c1 - c0) / ((c1 - c0) @ (c1 - c0)), 0, 1)
    return np.linalg.norm(pixels - (c0 + t[:, None] * (c1 - c0)), axis=1)


@pytest.mark.parametrize("size", [32, 64, 224])
def test_mask_is_exactly_the_object(size: int) -> None:
    for index in range(0, 40, 3):
        scene = scene_for(index, seed=1)
        image, mask, labels = render_synthetic(index, seed=1, size=size)
        assert image.shape == (size, size, 3) and image.dtype == np.uint8
        assert mask.shape == (size, size) and set(np.unique(mask)) == {0, 1}
        assert labels == {"shape": scene.shape, "texture": scene.texture}
        pixels = image.reshape(-1, 3).astype(float)
        to_object = _distance_to_segment(pixels, scene.object_colors)
        to_background = _distance_to_segment(pixels, scene.background_colors)
        inside = mask.ravel() == 1
        # every object pixel is painted from the object's colours, every other from the background's
        assert (to_object[inside] <= 1.0).all() and (to_background[~inside] <= 1.0).all()
        assert (to_object[~inside] > to_background[~inside]).mean() > 0.99


def test_resolution_changes_sampling_not_the_scene() -> None:
    small, small_mask, labels_small = render_synthetic(11, seed=2, size=32)
    big, big_mask, labels_big = render_synthetic(11, seed=2, size=224)
    assert labels_small == labels_big
    assert abs(small_mask.mean() - big_mask.mean()) < 0.03  # same object, same area share
    # block-averaging the 224 px mask to 32 px gives back the 32 px mask almost everywhere
    pooled = big_mask.reshape(32, 7, 32, 7).mean(axis=(1, 3)) > 0.5
    assert (pooled == small_mask.astype(bool)).mean() > 0.97


@pytest.mark.parametrize("size", [32, 224])
def test_texture_is_high_frequency_and_silhouette_low(size: int) -> None:
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size
    u, v = np.meshgrid(coords, coords)
    for name, texture in TEXTURES.items():
        for k, period in enumerate(np.linspace(1 / 9, 1 / 6, 4).tolist()):
            pattern = texture(u, v, period, np.random.default_rng(k))
            assert pattern.min() >= 0 and pattern.max() <= 1
            assert 0.3 < pattern.mean() < 0.7, name
            assert pattern.std() > 0.25, name  # the pattern has contrast even at 32 px
            assert _low_frequency_share(pattern, 4) < 0.1, name
    for index in range(16):
        _, mask = render_scene(scene_for(index, seed=0), size)
        assert _low_frequency_share(mask.astype(float), 4) > 0.3


def test_object_and_background_differ_in_mean_colour() -> None:
    """Shape can be read from a blurred image: the object's mean colour stands out."""
    for index in range(64):
        image, mask, _ = render_synthetic(index, seed=4, size=32)
        pixels = image.reshape(-1, 3) / 255
        inside = mask.ravel() == 1
        assert np.linalg.norm(pixels[inside].mean(0) - pixels[~inside].mean(0)) > 0.2


def test_dataset_items() -> None:
    dataset = resolve_dataset("synthetic", 64)
    assert len(dataset) == 512 and dataset.has_masks and dataset.skipped == 0
    assert dataset.label_names == ["shape", "texture"]
    assert dataset.num_classes == {"shape": 8, "texture": 8}
    item = dataset[3]
    assert set(item) == {"image", "index", "labels", "mask"}
    assert item["image"].dtype == torch.float32 and item["image"].shape == (3, 64, 64)
    assert item["mask"].dtype == torch.uint8 and item["index"] == 3
    image, mask, _ = render_synthetic(3, seed=0, size=64)
    mean = torch.tensor(dataset.mean).view(3, 1, 1)
    std = torch.tensor(dataset.std).view(3, 1, 1)
    raw = torch.from_numpy(image).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(item["image"], (raw - mean) / std)
    assert torch.equal(item["mask"], torch.from_numpy(mask))
    with pytest.raises(IndexError):
        dataset[512]


def test_render_224_takes_milliseconds() -> None:
    render_synthetic(0, size=224)
    start = time.perf_counter()
    for index in range(10):
        render_synthetic(index, size=224)
    assert (time.perf_counter() - start) / 10 < 0.1  # about 5 ms on an idle core; loose bound

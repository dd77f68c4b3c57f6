"""folder:PATH — odd image modes, tiny and corrupt files, stable indices, one warning."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image

from data_trees import GREY, RGBA_RED_ALPHA
from vitprobe.data import resolve_dataset
from vitprobe.errors import DataError

RAW = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}  # images come back in [0, 1]


def _open(root: Path, size: int = 32):
    with pytest.warns(UserWarning, match="skipped 3 unreadable") as record:
        dataset = resolve_dataset(f"folder:{root}", size, **RAW)
    assert len(record) == 1
    return dataset


def _image(dataset, name: str) -> torch.Tensor:
    return dataset[[f.name for f in dataset.files].index(name)]["image"]


def test_readable_files_used_bad_ones_counted(image_folder: Path) -> None:
    dataset = _open(image_folder)
    assert dataset.skipped == 3
    assert sorted(f.name for f in dataset.files) == sorted(
        ["wide.png", "grey.png", "rgba.png", "sixteen.png", "tiny.png", "palette.png",
         "photo.jpg", "deep.png"])
    assert dataset.class_names == {"class": ["cats", "dogs"]}
    labels = [dataset[i]["labels"]["class"] for i in range(len(dataset))]
    assert labels == [0] * 6 + [1] * 2
    assert dataset.describe()["class_counts"] == {"class": {"cats": 6, "dogs": 2}}
    assert dataset.describe()["skipped"] == 3
    for i in range(len(dataset)):
        item = dataset[i]
        assert item["image"].shape == (3, 32, 32) and item["index"] == i
        assert set(item) == {"image", "index", "labels"}


def test_modes_are_converted_to_8_bit_rgb(image_folder: Path) -> None:
    dataset = _open(image_folder)
    torch.testing.assert_close(_image(dataset, "grey.png"), torch.full((3, 32, 32), GREY / 255))
    sixteen = _image(dataset, "sixteen.png")  # 128 * 257 in 16 bits -> 128, not clipped to 255
    torch.testing.assert_close(sixteen, torch.full((3, 32, 32), 128 / 255))
    rgba = _image(dataset, "rgba.png")  # red at alpha 128 over black
    torch.testing.assert_close(rgba[0], torch.full((32, 32), RGBA_RED_ALPHA / 255), atol=2 / 255, rtol=0)
    assert rgba[1:].abs().max() == 0
    palette = _image(dataset, "palette.png")  # transparent top half -> black, bottom green
    assert palette[:, :12].abs().max() == 0
    torch.testing.assert_close(palette[1, 20:], torch.ones(12, 32))


def test_tiny_image_is_upscaled_and_wide_one_centre_cropped(image_folder: Path) -> None:
    dataset = _open(image_folder, size=48)
    tiny = _image(dataset, "tiny.png")
    torch.testing.assert_close(tiny, torch.tensor([0.0, 0.0, 1.0]).view(3, 1, 1).expand(3, 48, 48))
    wide = _image(dataset, "wide.png")  # red | green | blue thirds: only green survives the crop
    assert wide[1].mean() > 0.95
    assert wide[0].mean() < 0.05 and wide[2].mean() < 0.05


def test_normalisation_uses_mean_and_std(image_folder: Path) -> None:
    with pytest.warns(UserWarning):
        normalised = resolve_dataset(f"folder:{image_folder}", 32, mean=(0.5, 0.25, 0.0),
                                     std=(0.5, 0.25, 2.0))
    raw = _open(image_folder)
    mean = torch.tensor([0.5, 0.25, 0.0]).view(3, 1, 1)
    std = torch.tensor([0.5, 0.25, 2.0]).view(3, 1, 1)
    torch.testing.assert_close(normalised[0]["image"], (raw[0]["image"] - mean) / std)


def test_truncated_jpeg_is_skipped(tmp_path: Path) -> None:
    folder = tmp_path / "cls"
    folder.mkdir()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(folder / "full.jpg", quality=90)
    data = (folder / "full.jpg").read_bytes()
    (folder / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.warns(UserWarning, match="skipped 1 .*cut.jpg"):
        dataset = resolve_dataset(f"folder:{tmp_path}", 32)
    assert [f.name for f in dataset.files] == ["full.jpg"] and dataset.skipped == 1


def test_a_class_folder_without_images_is_warned_about(tmp_path: Path) -> None:
    for name in ("cat", "dog", "empty"):
        (tmp_path / name).mkdir()
    for name in ("cat", "dog"):
        Image.new("RGB", (16, 16), (1, 2, 3)).save(tmp_path / name / "a.png")
    with pytest.warns(UserWarning, match=r"class folder\(s\) empty hold no readable image"):
        dataset = resolve_dataset(f"folder:{tmp_path}", 32)
    assert len(dataset) == 2 and dataset.class_names["class"] == ["cat", "dog", "empty"]


def test_file_damaged_after_indexing_fails_with_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "cls"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        Image.new("RGB", (16, 16), (1, 2, 3)).save(folder / name)
    dataset = resolve_dataset(f"folder:{tmp_path}", 32)
    (folder / "b.png").write_bytes(b"gone")
    assert dataset[0]["image"].shape == (3, 32, 32)
    with pytest.raises(DataError, match="b.png") as info:
        dataset[1]
    assert "\n" not in str(info.value)


def test_split_subfolder(image_folder: Path, tmp_path: Path) -> None:
    with pytest.warns(UserWarning):
        nested = resolve_dataset(f"folder:{image_folder.parent}", 32, split="images")
    assert len(nested) == 8 and nested.split == "images"
    with pytest.raises(DataError, match="'nope'"):
        resolve_dataset(f"folder:{image_folder}", 32, split="nope")


@pytest.mark.parametrize("setup", ["missing", "file", "no_classes", "empty_classes", "only_bad"])
def test_unusable_folders_raise_one_line(tmp_path: Path, setup: str) -> None:
    root = tmp_path / "data"
    if setup == "file":
        root.write_text("x")
    elif setup != "missing":
        root.mkdir()
    if setup == "no_classes":
        Image.new("RGB", (8, 8)).save(root / "loose.png")
    if setup in ("empty_classes", "only_bad"):
        (root / "a").mkdir()
    if setup == "only_bad":
        (root / "a" / "bad.png").write_text("not a png")
    with pytest.raises(DataError) as info, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        resolve_dataset(f"folder:{root}", 32)
    message = str(info.value)
    assert "\n" not in message and str(root) in message

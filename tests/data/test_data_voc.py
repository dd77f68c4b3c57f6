"""voc:PATH[:split] — layouts, masks with 255 borders, NEAREST crop, missing files skipped."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from data_trees import VOC_ID_CLASS, voc_masks
from vitprobe.data import resolve_dataset
from vitprobe.data.voc import VOC_CLASSES
from vitprobe.errors import DataError


def _val(root: Path, size: int = 32, spec_tail: str = ""):
    with pytest.warns(UserWarning, match="skipped 2 image.s. with a missing or unreadable file, or masks of another size or colour mode: .*c.png .missing.; .*d.jpg .missing."):
        return resolve_dataset(f"voc:{root}{spec_tail}", size)


def test_val_split_skips_ids_with_missing_files(voc_root: Path) -> None:
    dataset = _val(voc_root)
    assert dataset.ids == ["a", "b"] and dataset.skipped == 2 and dataset.split == "val"
    assert dataset.has_masks and dataset.label_names == ["class"]
    assert dataset.num_classes == {"class": len(VOC_CLASSES)}
    person = VOC_CLASSES.index("person")
    assert VOC_ID_CLASS[1] == person  # object 1 covers the most pixels
    assert [dataset[i]["labels"] for i in range(2)] == [{"class": person}] * 2
    from vitprobe.plots.style import protocol_caption

    assert protocol_caption([{"dataset": dataset.describe()}]) == f"dataset voc:{voc_root} split val (n=2, 2 skipped)"
    counts = dataset.describe()["class_counts"]["class"]
    assert counts["person"] == 2 and sum(counts.values()) == 2


def test_square_mask_is_kept_exactly(voc_root: Path) -> None:
    item = _val(voc_root)[0]
    objects, _ = voc_masks(32, 32)
    assert item["mask"].dtype == torch.uint8
    assert torch.equal(item["mask"], torch.from_numpy(objects))
    assert set(item["mask"].unique().tolist()) == {0, 1, 2, 255}


def test_wide_mask_gets_the_image_centre_crop(voc_root: Path) -> None:
    dataset = _val(voc_root, size=32)
    objects, _ = voc_masks(32, 48)
    assert torch.equal(dataset[1]["mask"], torch.from_numpy(objects[:, 8:40]))
    upscaled = _val(voc_root, size=64)[1]["mask"]  # NEAREST: ids are never blended
    assert set(upscaled.unique().tolist()) <= {0, 1, 2, 255}
    assert torch.equal(upscaled[::2, ::2], torch.from_numpy(objects[:, 8:40]))
    assert upscaled.shape == (64, 64) and dataset[1]["image"].shape == (3, 32, 32)


@pytest.mark.parametrize("where", ["parent", "devkit", "voc2012"])
def test_layouts_and_splits(voc_root: Path, where: str) -> None:
    path = {"parent": voc_root, "devkit": voc_root / "VOCdevkit",
            "voc2012": voc_root / "VOCdevkit" / "VOC2012"}[where]
    assert len(_val(path)) == 2
    train = resolve_dataset(f"voc:{path}:train", 32)
    assert train.ids == ["a"] and train.skipped == 0 and train.split == "train"
    assert resolve_dataset(f"voc:{path}", 32, split="train").ids == ["a"]


def test_bad_voc_inputs_raise_one_line(voc_root: Path, tmp_path: Path) -> None:
    cases = {
        f"voc:{voc_root}:test": "available splits: train, val",
        f"voc:{tmp_path / 'nowhere'}": "does not exist",
        f"voc:{voc_root / 'VOCdevkit' / 'VOC2012' / 'JPEGImages'}": "no VOC2012 layout",
    }
    for spec, message in cases.items():
        with pytest.raises(DataError, match=message) as info:
            resolve_dataset(spec, 32)
        assert "\n" not in str(info.value)
    with pytest.raises(DataError, match="give the split once"):
        resolve_dataset(f"voc:{voc_root}:train", 32, split="val")
    for split in ("../x", "a/b", "val?"):  # a split in the spec must be a name, as split= must
        with pytest.raises(DataError, match=rf"^dataset 'voc:.*': split '{re.escape(split)}' is not a plain name "
                                            rf"\(letters, digits, _ and -\); use e.g. voc:{re.escape(str(voc_root))}:train"):
            resolve_dataset(f"voc:{voc_root}:{split}", 32)
    with pytest.raises(DataError, match=rf"^dataset 'voc:.*:val:x': a VOC spec takes one split after its folder, "
                                        rf"voc:PATH\[:split\], and {re.escape(str(voc_root))} is followed by 'val' "
                                        rf"and 'x'; use e.g. voc:{re.escape(str(voc_root))}:x$"):
        resolve_dataset(f"voc:{voc_root}:val:x", 32)  # it said that the folder '<root>:val' does not exist
    import shutil

    shutil.rmtree(voc_root / "VOCdevkit" / "VOC2012" / "SegmentationObject")
    with pytest.raises(DataError, match=r"has no SegmentationObject folder; the attention masks need"):
        resolve_dataset(f"voc:{voc_root}", 32)
    with pytest.raises(DataError, match="not a plain name"):
        resolve_dataset(f"voc:{voc_root}", 32, split="../../etc")


def test_mask_of_other_size_fails_with_one_line(voc_root: Path) -> None:
    from PIL import Image

    dataset = _val(voc_root)
    mask = dataset.root / "SegmentationObject" / "a.png"
    Image.fromarray(np.zeros((10, 10), dtype=np.uint8), "P").save(mask)
    with pytest.raises(DataError, match="masks of a are 10x10, image is 32x32"):
        dataset[0]


def test_an_id_whose_mask_has_another_size_is_skipped_up_front(voc_root: Path) -> None:
    from PIL import Image

    mask = voc_root / "VOCdevkit" / "VOC2012" / "SegmentationClass" / "b.png"
    Image.fromarray(np.zeros((10, 12), dtype=np.uint8), "P").save(mask)
    with pytest.warns(UserWarning, match="skipped 3 image.s. .*b.png .12x10 mask for a 48x32 image."):
        dataset = resolve_dataset(f"voc:{voc_root}", 32)
    assert dataset.ids == ["a"] and dataset.skipped == 3


def test_split_with_only_missing_files(voc_root: Path) -> None:
    sets = voc_root / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation"
    (sets / "broken.txt").write_text("c\nd\n")
    (sets / "blank.txt").write_text("\n")
    with pytest.raises(DataError, match="none of the 2 images"):
        resolve_dataset(f"voc:{voc_root}:broken", 32)
    with pytest.raises(DataError, match="lists no images"):
        resolve_dataset(f"voc:{voc_root}:blank", 32)


def test_an_id_whose_mask_is_not_an_index_png_is_skipped_up_front(voc_root: Path) -> None:
    from PIL import Image

    mask = voc_root / "VOCdevkit" / "VOC2012" / "SegmentationClass" / "b.png"
    Image.new("RGB", (48, 32)).save(mask)
    with pytest.warns(UserWarning, match=r"skipped 3 .*b.png .RGB mask; masks are palette or grey PNGs holding class ids."):
        dataset = resolve_dataset(f"voc:{voc_root}", 32)
    assert dataset.ids == ["a"]


def test_split_list_with_byte_order_mark_crlf_and_repeats(voc_root: Path) -> None:
    sets = voc_root / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation"
    (sets / "mine.txt").write_bytes("a \r\nb\r\na\r\n".encode("utf-8-sig"))
    with pytest.warns(UserWarning, match=r"lists 1 id.s. more than once .a.; each image is used once"):
        dataset = resolve_dataset(f"voc:{voc_root}:mine", 32)
    assert dataset.ids == ["a", "b"] and dataset.skipped == 0


def test_images_are_read_as_stored_beside_their_masks(voc_root: Path) -> None:
    """A JPEG whose EXIF tag says "rotate" is not turned: its mask covers the stored pixels."""
    from PIL import Image

    from vitprobe.data.images import load_rgb

    jpeg = voc_root / "VOCdevkit" / "VOC2012" / "JPEGImages" / "b.jpg"
    with Image.open(jpeg) as image:
        exif = image.getexif()
        exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to view
        image.save(jpeg, exif=exif, quality=95)
    with pytest.warns(UserWarning, match="skipped 2"):
        dataset = resolve_dataset(f"voc:{voc_root}", 32, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    stored = load_rgb(jpeg, 32, "x", exif_orientation=False)
    assert torch.equal(dataset[1]["image"], stored)
    assert not torch.equal(load_rgb(jpeg, 32, "x"), stored)  # a folder: dataset would turn it


def test_a_colon_in_the_folder_name_is_not_a_split(voc_root: Path, tmp_path: Path) -> None:
    named = tmp_path / "run:v2"
    (voc_root / "VOCdevkit").rename(named)
    assert resolve_dataset(f"voc:{named}", 32, split="train").ids == ["a"]
    assert resolve_dataset(f"voc:{named}:train", 32).ids == ["a"]


def test_a_class_id_outside_voc_is_an_error_not_background(voc_root: Path) -> None:
    """A VOC-style set with more classes (id 37) must not be read as 'background' silently."""
    from PIL import Image

    dataset = _val(voc_root)
    assert dataset[1]["labels"] == {"class": VOC_CLASSES.index("person")}  # 255 borders are no stray id
    path = dataset.root / "SegmentationClass" / "a.png"
    with Image.open(path) as mask:
        ids = np.asarray(mask).copy()
    ids[ids == VOC_CLASSES.index("person")] = 37
    Image.fromarray(ids).save(path)  # a grey PNG of ids, as some tools write VOC-style masks
    said = rf"{re.escape(str(path))} holds class id\(s\) 37, outside VOC 2012's 0-20 .*remove a from the split list$"
    with pytest.raises(DataError, match=said):
        dataset[0]
    with pytest.raises(DataError, match=said):
        _val(voc_root).describe()


def test_an_image_without_objects_is_background(voc_root: Path) -> None:
    from PIL import Image

    ids = np.zeros((32, 32), dtype=np.uint8)
    ids[:2] = 255  # void border only
    mask = Image.fromarray(ids, "P")
    mask.putpalette(list(range(256)) * 3)
    mask.save(voc_root / "VOCdevkit" / "VOC2012" / "SegmentationClass" / "a.png")
    assert _val(voc_root)[0]["labels"] == {"class": 0}


def test_a_tie_goes_to_the_lowest_class_id() -> None:
    from vitprobe.data.voc import majority_class

    assert majority_class(np.array([[5, 5, 3, 3, 0, 0, 0, 255]], dtype=np.uint8)) == 3

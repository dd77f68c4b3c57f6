"""folder:PATH — odd image modes, tiny and corrupt files, stable indices, one warning."""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from data_trees import GREY, RAW, RGBA_RED_ALPHA
from vitprobe.data import resolve_dataset
from vitprobe.errors import DataError


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


def test_float_images_are_read_as_0_to_1_where_every_value_lies_there_else_as_0_to_255(tmp_path: Path) -> None:
    """32-bit float (TIFF mode F): values within [0, 1] are the float convention (0.5 -> 128),
    any beyond it the 8-bit one, clipped (100 -> 100, 300 -> 255)."""
    for name, values in (("unit", [0.0, 0.5, 1.0]), ("eight_bit", [100.0, 300.0, -5.0])):
        (tmp_path / name).mkdir()
        for i, v in enumerate(values):
            Image.fromarray(np.full((8, 8), v, dtype=np.float32), "F").save(tmp_path / name / f"{i}.tif")
    dataset = resolve_dataset(f"folder:{tmp_path}", 16, **RAW)
    read = {f"{f.parent.name}/{f.stem}": float(dataset[i]["image"].mean()) * 255 for i, f in enumerate(dataset.files)}
    assert read == pytest.approx({"unit/0": 0, "unit/1": 128, "unit/2": 255,
                                  "eight_bit/0": 100, "eight_bit/1": 255, "eight_bit/2": 0}, abs=1e-4)


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


@pytest.mark.parametrize("suffix", [".jpg", ".bmp", ".tif", ".gif", ".png"])
def test_file_cut_short_is_skipped_when_built(tmp_path: Path, suffix: str) -> None:
    folder = tmp_path / "cls"
    folder.mkdir()
    pixels = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(folder / f"full{suffix}")
    data = (folder / f"full{suffix}").read_bytes()
    (folder / f"cut{suffix}").write_bytes(data[: int(len(data) * 0.9)])  # a download cut short
    with pytest.warns(UserWarning, match=f"skipped 1 .*cut{re.escape(suffix)}") as record:
        dataset = resolve_dataset(f"folder:{tmp_path}", 32)
    assert [f.name for f in dataset.files] == [f"full{suffix}"] and dataset.skipped == 1
    assert "truncated" in str(record[0].message) or suffix == ".png"
    assert all(dataset[i]["image"].shape == (3, 32, 32) for i in range(len(dataset)))


def test_a_jpeg_damaged_in_the_middle_is_skipped_when_built(tmp_path: Path) -> None:
    folder = tmp_path / "cls"
    folder.mkdir()
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, 128)[None, :, None] * np.ones((96, 1, 3))
    Image.fromarray((ramp + rng.normal(0, 20, (96, 128, 3))).clip(0, 255).astype(np.uint8)).save(
        folder / "whole.jpg", quality=90)
    data = bytearray((folder / "whole.jpg").read_bytes())
    middle = len(data) // 2
    data[middle:middle + 200] = rng.integers(0, 256, 200, dtype=np.uint8).tobytes()  # ends intact
    (folder / "damaged.jpg").write_bytes(bytes(data))
    with pytest.warns(UserWarning, match=r"skipped 1 .*damaged\.jpg"):
        dataset = resolve_dataset(f"folder:{tmp_path}", 32)
    assert [f.name for f in dataset.files] == ["whole.jpg"]


def test_verdicts_are_remembered_until_the_file_changes_but_not_file_system_errors(
        tmp_path: Path, monkeypatch) -> None:
    import errno

    from vitprobe.data import images

    opened = []
    real_open = images.Image.open

    def counting_open(*args, **kwargs):
        opened.append(args[0])
        if len(opened) == 1:  # the first attempt meets a full file table
            raise OSError(errno.EMFILE, "Too many open files")
        return real_open(*args, **kwargs)

    monkeypatch.setattr(images.Image, "open", counting_open)
    path = tmp_path / "a.png"
    Image.new("RGB", (16, 16), (1, 2, 3)).save(path)
    assert images.check_image(path) == "[Errno 24] Too many open files"
    assert images.check_image(path) is None  # the error was not remembered: checked again
    count = len(opened)
    assert images.check_image(path) is None and len(opened) == count  # remembered: not opened again
    data = path.read_bytes()
    path.write_bytes(data[:40])
    os.utime(path, ns=(1, 1))  # a new modification time, whatever the clock's resolution
    assert images.check_image(path) is not None and len(opened) > count
    path.write_bytes(data)
    os.utime(path, ns=(2, 2))
    assert images.check_image(path) is None


def test_flat_folder_has_no_labels_and_loose_images_beside_classes_are_warned_about(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    flat.mkdir()
    for name in ("a.png", "b.JPG", "c.jfif"):
        Image.new("RGB", (16, 16), (1, 2, 3)).save(flat / name, format="PNG" if name.endswith("png") else "JPEG")
    dataset = resolve_dataset(f"folder:{flat}", 32)
    assert len(dataset) == 3 and dataset.label_names == [] and dataset.class_counts() == {}
    assert dataset[0]["labels"] == {} and dataset.describe()["class_counts"] == {}
    (flat / "cls").mkdir()
    Image.new("RGB", (16, 16)).save(flat / "cls" / "d.png")
    with pytest.warns(UserWarning, match=r"left out 3 image\(s\) directly in .*flat .e\.g\. a\.png."):
        labelled = resolve_dataset(f"folder:{flat}", 32)
    assert [f.name for f in labelled.files] == ["d.png"] and labelled.label_names == ["class"]
    (flat / "cls" / "d.png").unlink()  # now a stray empty sub-folder: still a folder without labels
    (flat / "loop.jpg").symlink_to(flat / "loop.jpg")  # a link to itself: skipped, named
    with pytest.warns(UserWarning, match=r"skipped 1 .*loop\.jpg"):
        again = resolve_dataset(f"folder:{flat}", 32)
    assert len(again) == 3 and again.label_names == [] and again.skipped == 1


def test_links_are_followed_once_and_macos_forks_ignored(tmp_path: Path) -> None:
    root, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    (root / "cat").mkdir(parents=True)
    (elsewhere / "more").mkdir(parents=True)
    (root / "__MACOSX" / "cat").mkdir(parents=True)
    Image.new("RGB", (16, 16)).save(root / "cat" / "a.png")
    Image.new("RGB", (16, 16)).save(elsewhere / "more" / "b.png")
    (root / "__MACOSX" / "cat" / "._a.png").write_bytes(b"\x00\x05\x16\x07")
    (root / "cat" / "linked").symlink_to(elsewhere / "more", target_is_directory=True)
    (root / "cat" / "loop").symlink_to(root / "cat", target_is_directory=True)
    (root / "dog").symlink_to(elsewhere, target_is_directory=True)  # a linked class folder
    with pytest.warns(UserWarning) as record:
        dataset = resolve_dataset(f"folder:{root}", 32)
    messages = " | ".join(str(w.message) for w in record)
    assert "2 folder(s) or file(s) reached again through symbolic links" in messages  # cat/loop, cat/linked/b.png
    assert "hold no readable image" not in messages
    assert dataset.class_names == {"class": ["cat", "dog"]}
    # b.png lies in the folder that dog links to, so it is dog's, though cat reaches it first
    assert [(str(f.relative_to(root)), int(t)) for f, t in zip(dataset.files, dataset.targets)] == [
        ("cat/a.png", 0), ("dog/more/b.png", 1)]
    assert dataset.describe()["root"] == str(root.resolve())


def test_a_link_back_up_to_the_root_is_not_followed_and_links_to_nothing_are_warned_of(tmp_path: Path) -> None:
    """cat/up -> .. reached the image loose in the root (left out: no class) as cat/up/stray.png,
    and every class again; a class folder and a sub-folder linked to what does not exist were
    dropped unwarned."""
    for name in ("cat", "dog"):
        (tmp_path / name).mkdir()
        Image.new("RGB", (16, 16)).save(tmp_path / name / "own.png")
    Image.new("RGB", (16, 16)).save(tmp_path / "stray.png")
    (tmp_path / "cat" / "up").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "cow").symlink_to(tmp_path / "gone", target_is_directory=True)
    (tmp_path / "dog" / "more").symlink_to(tmp_path / "gone too", target_is_directory=True)
    with pytest.warns(UserWarning) as record:
        dataset = resolve_dataset(f"folder:{tmp_path}", 32)
    messages = " | ".join(str(w.message) for w in record)
    assert [(str(f.relative_to(tmp_path)), int(t)) for f, t in zip(dataset.files, dataset.targets)] == [
        ("cat/own.png", 0), ("dog/own.png", 1)]
    assert "left out 1 image(s) directly in" in messages
    assert f"1 folder(s) or file(s) reached again through symbolic links were read once, under the class folder " \
           f"that holds them, else the first that reaches them (e.g. {tmp_path}/cat/up is {tmp_path})" in messages
    assert f"left out 2 symbolic link(s) whose target does not exist (e.g. {tmp_path}/cow -> {tmp_path}/gone); " \
           "restore the target or remove the link" in messages


def test_a_linked_file_is_read_once_under_the_class_that_holds_it(tmp_path: Path) -> None:
    """A link in cat to dog's image used to move that image into cat (the first class to reach
    it), leaving dog without it; a file outside the tree linked from two classes goes to the first."""
    for name in ("cat", "dog"):
        (tmp_path / name).mkdir()
        Image.new("RGB", (16, 16)).save(tmp_path / name / "own.png")
    (tmp_path / "cat" / "z_dog.png").symlink_to(tmp_path / "dog" / "own.png")
    said = rf"1 folder\(s\) or file\(s\) reached again .*under the class folder that holds them, else the first " \
           rf"that reaches them \(e.g. {tmp_path}/cat/z_dog.png is {tmp_path}/dog/own.png\)"
    with pytest.warns(UserWarning, match=said):
        dataset = resolve_dataset(f"folder:{tmp_path}", 32)
    assert [(str(f.relative_to(tmp_path)), int(t)) for f, t in zip(dataset.files, dataset.targets)] == [
        ("cat/own.png", 0), ("dog/own.png", 1)]
    (tmp_path / ".store").mkdir()  # hidden: no class, and outside every class folder
    Image.new("RGB", (16, 16)).save(tmp_path / ".store" / "shared.png")
    for name in ("dog", "cat"):
        (tmp_path / name / "shared.png").symlink_to(tmp_path / ".store" / "shared.png")
    with pytest.warns(UserWarning, match=r"2 folder\(s\) or file\(s\) reached again"):
        dataset = resolve_dataset(f"folder:{tmp_path}", 32)
    assert [(str(f.relative_to(tmp_path)), int(t)) for f, t in zip(dataset.files, dataset.targets)] == [
        ("cat/own.png", 0), ("cat/shared.png", 0), ("dog/own.png", 1)]


def test_split_folders_read_as_classes_and_formats_left_out_are_warned_about(tmp_path: Path) -> None:
    for split in ("train", "val"):
        for name in ("cat", "dog"):
            (tmp_path / split / name).mkdir(parents=True)
            Image.new("RGB", (16, 16)).save(tmp_path / split / name / "a.png")
    Image.new("RGB", (16, 16)).save(tmp_path / "val" / "dog" / "b.ico")
    Image.new("RGB", (16, 16)).save(tmp_path / "val" / "dog" / "c.avif")
    (tmp_path / "val" / "dog" / "notes.txt").write_text("not an image")
    with pytest.warns(UserWarning) as record:
        resolve_dataset(f"folder:{tmp_path}", 32)
    messages = " | ".join(str(w.message) for w in record)
    assert f"the class folders of {tmp_path} are train, val, which name splits" in messages
    assert f"folder:{tmp_path / 'val'}" in messages
    assert "left out 1 file(s) in formats vitprobe does not read (.ico 1); convert them" in messages
    val = resolve_dataset(f"folder:{tmp_path / 'val'}", 32)
    assert val.class_names == {"class": ["cat", "dog"]} and len(val) == 3  # the AVIF is read
    import shutil

    shutil.rmtree(tmp_path / "train")  # one split alone is read as one class as well
    with pytest.warns(UserWarning, match=rf"the only class folder of {tmp_path} is val, which names a split, so "
                                         rf"the split is read as the label; .* folder:{tmp_path / 'val'}"):
        resolve_dataset(f"folder:{tmp_path}", 32)


def test_a_voc_folder_read_as_class_folders_is_warned_about(voc_root: Path) -> None:
    with pytest.warns(UserWarning, match=r"has the PASCAL VOC layout .* use voc:"):
        resolve_dataset(f"folder:{voc_root / 'VOCdevkit' / 'VOC2012'}", 32)


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
    from vitprobe.data import make_loader

    with pytest.raises(DataError) as info:  # raised in a loader worker: its one line, no traceback
        list(make_loader(dataset, batch_size=2, num_workers=1))
    assert str(info.value).startswith(f"dataset 'folder:{tmp_path}': cannot decode {folder / 'b.png'}")
    assert "\n" not in str(info.value)
    (folder / "b.png").unlink()  # deleted after the dataset was built: gone, not undecodable
    with pytest.raises(DataError, match=rf"{folder / 'b.png'} is gone \(it was there when the dataset was built\); "
                                        "restore it, or rerun to leave it out"):
        dataset[1]


def test_split_subfolder(image_folder: Path, tmp_path: Path) -> None:
    with pytest.warns(UserWarning):
        nested = resolve_dataset(f"folder:{image_folder.parent}", 32, split="images")
    assert len(nested) == 8 and nested.split == "images"
    with pytest.raises(DataError, match="'nope'"):
        resolve_dataset(f"folder:{image_folder}", 32, split="nope")


@pytest.mark.parametrize("setup", ["missing", "file", "nothing", "empty_classes", "only_bad"])
def test_unusable_folders_raise_one_line(tmp_path: Path, setup: str) -> None:
    root = tmp_path / "data"
    if setup == "file":
        root.write_text("x")
    elif setup != "missing":
        root.mkdir()
    if setup == "nothing":
        (root / "notes.txt").write_text("no images here")
    if setup in ("empty_classes", "only_bad"):
        (root / "a").mkdir()
    if setup == "only_bad":
        (root / "a" / "bad.png").write_text("not a png")
    with pytest.raises(DataError) as info, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        resolve_dataset(f"folder:{root}", 32)
    message = str(info.value)
    assert "\n" not in message and str(root) in message


def test_images_over_pils_pixel_limit_are_skipped_with_the_fix_and_large_ones_read_quietly(
        tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 400)  # PIL refuses over 800 pixels, warns over 400
    (tmp_path / "c").mkdir()
    Image.new("RGB", (30, 30)).save(tmp_path / "c" / "huge.png")
    Image.new("RGB", (25, 25)).save(tmp_path / "c" / "large.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = resolve_dataset(f"folder:{tmp_path}", 32)
        image = dataset[0]["image"]
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "skipped 1 unreadable file(s)" in messages[0], messages
    assert "huge.png" in messages[0] and "downscale it (in Python, or a --plugin module, raise PIL.Image.MAX_IMAGE_PIXELS if you trust the file)" in messages[0]
    assert image.shape == (3, 32, 32) and [f.name for f in dataset.files] == ["large.png"]


def test_loose_images_beside_sub_folders_of_unreadable_files_are_named_in_the_error(tmp_path: Path) -> None:
    """A flat folder with one stray sub-folder holding a broken file was refused with only
    "no readable images under <class>/": the error now says why the loose images were not read."""
    for name in ("a.png", "b.png"):
        Image.new("RGB", (16, 16)).save(tmp_path / name)
    (tmp_path / "trash").mkdir()
    (tmp_path / "trash" / "cut.jpg").write_bytes(b"\xff\xd8\xff")
    with pytest.warns(UserWarning, match="left out 2 image"):
        with pytest.raises(DataError, match=rf"no readable image in the sub-folders of {tmp_path} \(trash: 1 unreadable\), "
                                            r"and the 2 images directly in it are left out because it has sub-folders; "
                                            rf"remove those sub-folders to read {tmp_path} without labels"):
            resolve_dataset(f"folder:{tmp_path}", 32)


def _read_one(tmp_path: Path, image: Image.Image, name: str = "a.png", size: int = 32) -> torch.Tensor:
    """``image`` saved alone in a flat folder and read back at ``size``, pixels in [0, 1]."""
    (tmp_path / "flat").mkdir()
    image.save(tmp_path / "flat" / name)
    return resolve_dataset(f"folder:{tmp_path / 'flat'}", size, **RAW)[0]["image"]


def test_files_are_in_path_order_whatever_the_walk_found_first(image_folder: Path) -> None:
    with pytest.warns(UserWarning):
        dataset = resolve_dataset(f"folder:{image_folder}", 32, **RAW)
    assert [str(f.relative_to(image_folder)) for f in dataset.files] == [
        "cats/grey.png", "cats/palette.png", "cats/rgba.png", "cats/sixteen.png", "cats/tiny.png",
        "cats/wide.png", "dogs/nested/deep.png", "dogs/photo.jpg"]


def test_one_class_named_like_a_split_among_others_is_not_warned(tmp_path: Path) -> None:
    for name in ("cat", "test"):
        (tmp_path / name).mkdir()
        Image.new("RGB", (16, 16)).save(tmp_path / name / "a.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # only a tree whose every class is a split name is warned of
        dataset = resolve_dataset(f"folder:{tmp_path}", 32)
    assert dataset.class_names == {"class": ["cat", "test"]}


def test_an_empty_last_class_is_counted_as_zero(tmp_path: Path) -> None:
    for name in ("cat", "dog", "zzz"):
        (tmp_path / name).mkdir()
    for name in ("cat", "dog"):
        Image.new("RGB", (16, 16)).save(tmp_path / name / "a.png")
    with pytest.warns(UserWarning, match="zzz hold no readable image"):
        dataset = resolve_dataset(f"folder:{tmp_path}", 32)
    assert dataset.class_counts() == {"class": [1, 1, 0]}
    assert dataset.describe()["class_counts"] == {"class": {"cat": 1, "dog": 1, "zzz": 0}}


def test_sixteen_bit_grey_is_scaled_by_257(tmp_path: Path) -> None:
    image = Image.fromarray(np.full((24, 24), 200 * 257, dtype=np.uint16))  # 16-bit 200 * 257 is 8-bit 200
    torch.testing.assert_close(_read_one(tmp_path, image), torch.full((3, 32, 32), 200 / 255))


def test_transparent_palette_pixels_are_black_whatever_their_colour(tmp_path: Path) -> None:
    halves = np.ones((16, 16), dtype=np.uint8)
    halves[:8] = 0
    palette = Image.fromarray(halves, "P")
    palette.putpalette([255, 255, 255, 0, 255, 0] + [0] * 762)  # the transparent index is white
    palette.info["transparency"] = 0
    image = _read_one(tmp_path, palette)
    assert image[:, :12].abs().max() == 0
    torch.testing.assert_close(image[1, 20:], torch.ones(12, 32))


def test_a_tall_image_keeps_its_vertical_centre(tmp_path: Path) -> None:
    tall = np.zeros((90, 30, 3), dtype=np.uint8)
    tall[:30], tall[30:60], tall[60:] = (255, 0, 0), (0, 255, 0), (0, 0, 255)
    image = _read_one(tmp_path, Image.fromarray(tall))
    assert image[1].mean() > 0.95 and image[0].mean() < 0.05 and image[2].mean() < 0.05


def test_a_jpeg_is_not_decoded_below_the_size_asked(tmp_path: Path) -> None:
    """JPEG's draft mode may decode at a fraction of the size, never below the size read."""
    from vitprobe.data.images import load_rgb

    stripes = np.zeros((64, 64, 3), dtype=np.uint8)
    stripes[:, ::4] = stripes[:, 1::4] = 255
    Image.fromarray(stripes).save(tmp_path / "s.jpg", quality=95)
    image = load_rgb(tmp_path / "s.jpg", 32, "x")  # 2-px stripes at 64 px are 1-px stripes at 32 px
    assert image[0].std() > 0.3 and (image[0, :, 0::2] - image[0, :, 1::2]).abs().mean() > 0.5

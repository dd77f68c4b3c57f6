"""Known answers that a mutation round on vitprobe/data found unchecked: checks of the
normalisation and size, the pixel inverse, the digits split, folder layouts and their
warnings, PIL mode conversion, resampling and the check cache, VOC masks changed after
building, VOC roots and class ids, the item contract, data a user hands in, spec
forms, and the synthetic shapes, colours and textures."""

from __future__ import annotations

import colorsys
import dataclasses
import math
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from data_trees import RAW, _save
from PIL import Image
from sklearn.datasets import load_digits
from torch.utils.data import BatchSampler, DataLoader, SequentialSampler, Subset

from vitprobe.data import SHAPE_NAMES, render_synthetic, resolve_dataset
from vitprobe.data.base import to_uint8_images
from vitprobe.data.images import check_image
from vitprobe.data.items import check_item
from vitprobe.data.loader import collate_items
from vitprobe.data.spec import absolute_spec, parse_spec, relative_path_note
from vitprobe.data.synthetic import render_scene, scene_for
from vitprobe.data.textures import (
    band_noise,
    checkerboard,
    horizontal_stripes,
    square_wave,
    vertical_stripes,
)
from vitprobe.data.user_data import as_items, describe_data, first_item, loader_sampling
from vitprobe.data.voc import VOC_CLASSES
from vitprobe.errors import ConfigError, DataError


def _png(path: Path) -> Path:
    """A 16 x 16 one-colour PNG at ``path``."""
    return _save(Image.new("RGB", (16, 16), (10, 20, 30)), path)


def _quiet(spec: str, size: int = 16, **kwargs):
    """The dataset, built with any warning an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return resolve_dataset(spec, size, **kwargs)


@pytest.mark.parametrize("kwargs", [{"mean": (0.5, 0.5, 0.5, 0.5)}, {"std": (1.0, 1.0, 1.0, 1.0)}])
def test_four_numbers_of_mean_or_std_are_refused(kwargs: dict) -> None:
    """Mean and std take exactly three numbers, not at least three."""
    with pytest.raises(DataError, match="three finite numbers"):
        resolve_dataset("synthetic:4", 32, **kwargs)


def test_the_smallest_image_side_is_16() -> None:
    """Side 16 is accepted, 15 refused."""
    assert resolve_dataset("synthetic:4", 16)[0]["image"].shape == (3, 16, 16)
    with pytest.raises(DataError, match="image size"):
        resolve_dataset("synthetic:4", 15)


def test_an_index_equal_to_the_length_is_out_of_range() -> None:
    """A dataset rendered on the fly still refuses index len(dataset)."""
    dataset = resolve_dataset("synthetic:4", 16)
    with pytest.raises(IndexError, match="out of range 0..3"):
        dataset[4]


def test_to_uint8_images_inverts_the_normalisation_rounding_and_keeping_rows() -> None:
    """255 * (x * std + mean), rounded and clamped, channels last, rows stay rows."""
    mean, std = (0.5, 0.25, 0.0), (0.5, 2.0, 1.0)
    pixels = torch.zeros(1, 3, 2, 2)
    pixels[0, :, 0, 1] = torch.tensor([100.4, 100.6, 300.0]) / 255  # one pixel off the diagonal
    normalised = (pixels - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    out = to_uint8_images(normalised, mean, std)
    expected = torch.zeros(1, 2, 2, 3, dtype=torch.uint8)
    expected[0, 0, 1] = torch.tensor([100, 101, 255], dtype=torch.uint8)
    assert torch.equal(out, expected)


def test_digits_val_holds_the_first_of_every_five_images_of_each_class() -> None:
    """Val = in-class ranks 0, 5, 10, ... in file order; train = the others, in order."""
    reference = load_digits()
    ranks = np.zeros(len(reference.target), dtype=int)
    for digit in range(10):
        members = np.flatnonzero(reference.target == digit)
        ranks[members] = np.arange(len(members))
    whole = resolve_dataset("digits", 16, **RAW)
    for split, rows in (("val", np.flatnonzero(ranks % 5 == 0)), ("train", np.flatnonzero(ranks % 5 != 0))):
        dataset = resolve_dataset("digits", 16, split=split, **RAW)
        assert len(dataset) == len(rows)
        for place in (0, 1, len(rows) - 1):
            assert dataset[place]["labels"] == {"digit": int(reference.target[rows[place]])}
        assert torch.equal(dataset[1]["image"], whole[int(rows[1])]["image"])


def test_a_file_given_as_the_folder_is_not_a_directory(tmp_path: Path) -> None:
    """A file named as the folder: said so, not a listing error."""
    path = _png(tmp_path / "one.png")
    with pytest.raises(DataError, match="is not a directory"):
        resolve_dataset(f"folder:{path}", 16)


def test_hidden_files_in_other_formats_are_not_warned_about(tmp_path: Path) -> None:
    """A hidden .psd (or .ico) beside the images is ignored, like any hidden file."""
    _png(tmp_path / "data" / "a" / "x.png")
    (tmp_path / "data" / "a" / ".thumb.ico").write_bytes(b"\0")
    assert len(_quiet(f"folder:{tmp_path / 'data'}")) == 1


def test_two_links_to_one_file_in_a_class_are_read_once(tmp_path: Path) -> None:
    """Within one class, a file and two links to it are one image (each link warned of)."""
    real = _png(tmp_path / "data" / "a" / "x.png")
    os.symlink(real, tmp_path / "data" / "a" / "y.png")
    os.symlink(real, tmp_path / "data" / "a" / "z.png")
    with pytest.warns(UserWarning, match="2 folder.s. or file.s. reached again"):
        dataset = resolve_dataset(f"folder:{tmp_path / 'data'}", 16)
    assert [f.name for f in dataset.files] == ["x.png"]


def test_a_flat_folder_with_an_image_less_sub_folder_is_read_quietly(tmp_path: Path) -> None:
    """Loose images beside a sub-folder without images (holding a link back up) read
    without labels and without a warning: nothing is left out."""
    _png(tmp_path / "data" / "a.png")
    _png(tmp_path / "data" / "b.png")
    (tmp_path / "data" / "sub").mkdir()
    os.symlink(tmp_path / "data" / "sub", tmp_path / "data" / "sub" / "loop")
    dataset = _quiet(f"folder:{tmp_path / 'data'}")
    assert len(dataset) == 2 and dataset.label_names == [] and dataset[0]["labels"] == {}


def test_a_class_folder_is_no_holder_of_a_sibling_whose_name_it_begins(tmp_path: Path) -> None:
    """Class x is folder d, class y is d/pics, and y links to d/pics2/img.png: d holds the
    file, d/pics does not (d/pics2 only begins with its name), so the image is class x's."""
    shared = tmp_path / "d"
    real = _png(shared / "pics2" / "img.png")
    (shared / "pics").mkdir()
    os.symlink(real, shared / "pics" / "link.png")
    root = tmp_path / "data"
    root.mkdir()
    os.symlink(shared, root / "x")
    os.symlink(shared / "pics", root / "y")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = resolve_dataset(f"folder:{root}", 16)
    assert dataset.class_counts() == {"class": [1, 0]}


@pytest.mark.parametrize(("layout", "problem"), [
    ("empty", "holds no images; put them in"),
    ("empty_classes", "no readable images under .*/<class>/ .0 unreadable."),
    ("only_bad", "no readable images under .*/<class>/ .1 unreadable."),
])
def test_folders_without_readable_images_say_where_to_put_them(tmp_path: Path, layout: str,
                                                             problem: str) -> None:
    """An empty folder, empty class folders, and class folders of broken files each get
    their own one-line error."""
    root = tmp_path / "data"
    root.mkdir()
    if layout != "empty":
        (root / "a").mkdir()
    if layout == "only_bad":
        (root / "a" / "bad.png").write_text("not a png")
    with pytest.raises(DataError, match=problem) as info, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        resolve_dataset(f"folder:{root}", 16)
    assert "directly in it are left out" not in str(info.value)


def test_class_folders_named_like_splits_in_capitals_are_warned_about(tmp_path: Path) -> None:
    """Train/ and Val/ name splits whatever their case."""
    _png(tmp_path / "data" / "Train" / "a.png")
    _png(tmp_path / "data" / "Val" / "b.png")
    with pytest.warns(UserWarning, match="which name splits"):
        resolve_dataset(f"folder:{tmp_path / 'data'}", 16)


def test_sixteen_bit_grey_rounds_to_the_nearest_8_bit_value(tmp_path: Path) -> None:
    """1000 / 257 = 3.89 rounds to 4, not down to 3."""
    Image.fromarray(np.full((16, 16), 1000, dtype=np.uint16)).save(tmp_path / "g.png")
    image = _quiet(f"folder:{tmp_path}", **RAW)[0]["image"]
    torch.testing.assert_close(image, torch.full((3, 16, 16), 4 / 255))


def test_a_file_damaged_in_place_is_checked_again(tmp_path: Path) -> None:
    """Same inode, same size, new modification time: the remembered verdict is dropped."""
    path = tmp_path / "a.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path)
    assert check_image(path) is None
    with open(path, "r+b") as file:
        file.seek(len(path.read_bytes()) // 2)
        file.write(b"\xff\x00\xff\x00")
    os.utime(path, ns=(1, 1))
    assert check_image(path) is not None


def test_an_odd_overhang_is_cropped_by_half_a_pixel_each_side(tmp_path: Path) -> None:
    """A 17 x 16 ramp (column j holds 10 j) cropped to its centre 16 x 16 starts half a
    pixel in: column i reads between j = i and i + 1, 10 i + 5 (a cubic keeps a ramp)."""
    ramp = np.repeat((10 * np.arange(17, dtype=np.uint8))[None, :, None], 16, axis=0).repeat(3, axis=2)
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    image = _quiet(f"folder:{tmp_path}", **RAW)[0]["image"]
    expected = (10 * torch.arange(2, 14) + 5).float() / 255
    torch.testing.assert_close(image[0, 8, 2:14], expected, atol=1 / 255, rtol=0)


def test_upscaling_is_bicubic_so_a_step_overshoots(tmp_path: Path) -> None:
    """A 100 | 200 step upscaled 4x: the cubic kernel's negative lobes ring past both
    levels, which a linear one never does."""
    step = np.full((8, 8, 3), 100, dtype=np.uint8)
    step[:, 4:] = 200
    Image.fromarray(step).save(tmp_path / "step.png")
    row = _quiet(f"folder:{tmp_path}", 32, **RAW)[0]["image"][0, 16] * 255
    assert row.min() < 99 and row.max() > 201


def test_a_voc_mask_turned_rgb_after_building_names_the_mode(voc_root: Path) -> None:
    """A mask rewritten as RGB after the checks fails on read with its mode, not a size."""
    with pytest.warns(UserWarning, match="skipped 2"):
        dataset = resolve_dataset(f"voc:{voc_root}", 32)
    mask = voc_root / "VOCdevkit" / "VOC2012" / "SegmentationObject" / "a.png"
    Image.new("RGB", (32, 32)).save(mask)
    with pytest.raises(DataError, match="is a RGB image; masks must be palette or grey PNGs holding object ids"):
        dataset[0]


def test_pixels_in_0_1_reaching_1_are_warned_of() -> None:
    """An image in 0.2..1.0 (a white pixel) reads as raw 0..1 pixels."""
    image = torch.full((3, 16, 16), 0.2)
    image[:, 0, 0] = 1.0
    with pytest.warns(UserWarning, match="like 0..1 pixels"):
        check_item({"image": image}, "d")


def test_the_size_check_reads_height_then_width() -> None:
    """A 32 x 48 (H x W) image fits size (32, 48); a 48 x 32 one does not."""
    check_item({"image": torch.full((3, 32, 48), -1.0)}, "d", size=(32, 48))
    with pytest.raises(ConfigError, match="images are 48x32 px but the model takes 32x48"):
        check_item({"image": torch.full((3, 48, 32), -1.0)}, "d", size=(32, 48))


def test_a_mask_of_only_background_is_not_warned_about() -> None:
    """All 0 is an image without objects, not a 0-and-255 mask."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_item({"image": torch.full((3, 8, 8), -1.0), "mask": torch.zeros(8, 8, dtype=torch.long)}, "d")


def test_a_key_mismatch_names_the_items_index() -> None:
    """Items that carry an index are named by it, not by their batch place."""
    items = [{"image": torch.zeros(3, 4, 4), "index": 7}, {"image": torch.zeros(3, 4, 4), "index": 9, "label": 1}]
    with pytest.raises(DataError, match=r"the item at index 9 has keys"):
        collate_items(items)


def test_a_folder_dataset_records_its_kind_in_lower_case(tmp_path: Path) -> None:
    """FOLDER:PATH with spaces around is recorded as folder:PATH."""
    _png(tmp_path / "a.png")
    assert _quiet(f" FOLDER:{tmp_path}").describe()["spec"] == f"folder:{tmp_path}"


def test_a_synthetic_seed_does_not_change_its_size() -> None:
    """synthetic:4:9 holds 4 images, drawn with seed 9."""
    dataset = resolve_dataset("synthetic:4:9", 16)
    assert len(dataset) == 4 and dataset.seed == 9


def test_the_largest_size_and_seed_are_accepted() -> None:
    """Bounds are inclusive: N up to 10**9, seed up to 2**63 - 1."""
    parsed = parse_spec(f"synthetic:{10**9}:{2**63 - 1}")
    assert (parsed.n, parsed.seed) == (10**9, 2**63 - 1)


SHAPE_AREAS = {  # area of each filled shape at radius 1 (the heart has no closed form)
    "circle": math.pi * 0.95**2,
    "square": 2.0,  # a square inscribed in the unit circle
    "triangle": 3 * math.sqrt(3) / 4,
    "star": 10 * 0.5 * 0.42 * math.sin(math.pi / 5),  # 10 triangles: tip 1, notch 0.42, 36 degrees apart
    "cross": 2 * 0.6 * 1.86 - 0.6**2,
    "ring": math.pi * (0.95**2 - 0.5**2),
    "hexagon": 3 * math.sqrt(3) / 2,
}


@pytest.mark.parametrize("shape", range(len(SHAPE_NAMES)))
def test_each_shape_has_its_area_and_stays_within_its_radius(shape: int) -> None:
    """The mask of a labelled shape has that shape's area (to 2 %) and no pixel farther from
    the centre than the radius (the heart: a little farther)."""
    size, radius = 256, 0.4
    scene = dataclasses.replace(scene_for(0, 0), shape=shape, texture=(shape + 1) % len(SHAPE_NAMES),
                                center=(0.5, 0.5), radius=radius, angle=0.3)
    _, mask = render_scene(scene, size)
    side = radius * size
    name = SHAPE_NAMES[shape]
    if name in SHAPE_AREAS:
        assert mask.sum() / side**2 == pytest.approx(SHAPE_AREAS[name], rel=0.02)
    rows, cols = np.nonzero(mask)
    assert len(rows) > 0.2 * side**2
    reach = 1.012 if name == "heart" else 1.0  # the heart's lobes reach 1.011 radii, inside the 0.02 margin
    assert np.hypot(rows + 0.5 - size / 2, cols + 0.5 - size / 2).max() <= reach * side


def test_objects_lie_wholly_inside_the_image() -> None:
    """Every object keeps 0.02 of the side between its radius and each border."""
    for index in range(200):
        scene = scene_for(index, 3)
        assert all(scene.radius + 0.02 <= c <= 1 - scene.radius - 0.02 for c in scene.center)


def test_light_objects_lie_on_dark_grounds_in_the_opposite_hue() -> None:
    """Object and background differ in HSV value across 0.5 and in hue by half a turn."""
    for index in range(40):
        scene = scene_for(index, 5)
        hue, _, value = colorsys.rgb_to_hsv(*scene.object_colors[1])
        ground_hue, _, ground = colorsys.rgb_to_hsv(*scene.background_colors[1])
        assert (value > 0.5) != (ground > 0.5)
        assert abs((ground_hue - hue) % 1.0 - 0.5) < 1e-6


def test_the_val_stream_draws_other_scenes() -> None:
    """Val's image i is not train's image i redrawn with other labels: its scene differs."""
    for index in range(8):
        assert scene_for(index, 0, 0).center != scene_for(index, 0, 1).center


def test_render_synthetic_refuses_a_side_below_16() -> None:
    """The render function checks the side as the dataset does."""
    with pytest.raises(DataError, match="image size"):
        render_synthetic(0, size=8)


def test_stripes_vary_across_their_direction_only() -> None:
    """Horizontal stripes are constant along each row, vertical ones along each column."""
    coords = (np.arange(32) + 0.5) / 32
    u, v = np.meshgrid(coords, coords)
    across = horizontal_stripes(u, v, 0.125, np.random.default_rng(0))
    down = vertical_stripes(u, v, 0.125, np.random.default_rng(0))
    assert np.ptp(across, axis=1).max() == 0 and np.ptp(across[:, 0]) > 0.9
    assert np.ptp(down, axis=0).max() == 0 and np.ptp(down[0]) > 0.9


def test_a_checkerboard_flips_over_half_a_period_along_one_axis() -> None:
    """0.5 + 0.5 s(u) s(v): shifting u by half a period negates s(u), shifting both keeps it."""
    u = np.array([0.013, 0.2, 0.37])
    v = np.array([0.05, 0.31, 0.9])
    value = checkerboard(u, v, 0.1, np.random.default_rng(4))
    np.testing.assert_allclose(checkerboard(u + 0.05, v, 0.1, np.random.default_rng(4)), 1 - value, atol=1e-9)
    np.testing.assert_allclose(checkerboard(u + 0.05, v + 0.05, 0.1, np.random.default_rng(4)), value, atol=1e-9)


def test_the_square_wave_has_sharpness_2_5() -> None:
    """At a quarter period sin = 1: 0.5 + 0.5 tanh(2.5)."""
    assert float(square_wave(np.array(0.25))) == pytest.approx(0.5 + 0.5 * math.tanh(2.5))


def test_a_voc_split_name_may_hold_a_hyphen() -> None:
    """train-aug is a plain split name."""
    assert parse_spec("voc:/data/VOC:train-aug").split == "train-aug"


def test_relative_voc_specs_are_made_absolute_with_their_split(tmp_path: Path, monkeypatch) -> None:
    """voc:rel:train reads rel from the working folder, which the note names."""
    monkeypatch.chdir(tmp_path)
    assert absolute_spec("voc:rel:train") == f"voc:{tmp_path / 'rel'}:train"
    assert str(tmp_path) in relative_path_note("voc:rel:train")
    assert relative_path_note(f"voc:{tmp_path}:train") == "" and relative_path_note("synthetic") == ""


def test_band_noise_is_normalised_to_unit_spread() -> None:
    """w / sqrt(J / 2) has standard deviation about 1 (each wave's variance is 1/2); read
    back through the pattern's tanh."""
    coords = (np.arange(256) + 0.5) / 256
    u, v = np.meshgrid(coords, coords)
    pattern = band_noise(u, v, 0.05, np.random.default_rng(1))
    w = np.arctanh(2 * pattern - 1) / 2.5
    assert 0.75 < w.std() < 1.3


def _voc_val(root: Path):
    with pytest.warns(UserWarning, match="skipped 2"):
        return resolve_dataset(f"voc:{root}", 32)


def _class_mask(root: Path, image_id: str, fill: int) -> None:
    """Replace ``image_id``'s class mask (32 x 32) by one whose objects are all ``fill``."""
    path = root / "VOCdevkit" / "VOC2012" / "SegmentationClass" / f"{image_id}.png"
    with Image.open(path) as image:
        ids = np.asarray(image).copy()
    ids[(ids != 0) & (ids != 255)] = fill
    Image.fromarray(ids, "L").save(path)


def test_tvmonitor_is_a_class_and_21_is_not(voc_root: Path) -> None:
    """Class id 20 (tvmonitor) can be the majority; id 21 lies outside VOC's classes."""
    _class_mask(voc_root, "a", 20)
    dataset = _voc_val(voc_root)
    assert dataset[0]["labels"] == {"class": VOC_CLASSES.index("tvmonitor")}
    _class_mask(voc_root, "a", 21)
    with pytest.raises(DataError, match=r"holds class id\(s\) 21, outside"):
        dataset[0]


def test_voc_class_counts_name_every_class(voc_root: Path) -> None:
    """Classes no image has are counted as 0, up to tvmonitor."""
    counts = _voc_val(voc_root).describe()["class_counts"]["class"]
    assert list(counts) == VOC_CLASSES and counts["tvmonitor"] == 0


def test_a_stray_jpegimages_beside_voc2012_is_not_the_root(voc_root: Path) -> None:
    """A folder holding JPEGImages but no ImageSets/Segmentation is passed over for the
    VOC2012 below it."""
    devkit = voc_root / "VOCdevkit"
    (devkit / "JPEGImages").mkdir()
    assert _voc_val(devkit).root == devkit / "VOC2012"


class _Labelled:
    """Three item dicts whose label is their index."""

    def __len__(self) -> int:
        return 3

    def __getitem__(self, index: int) -> dict:
        return {"image": torch.full((3, 4, 4), -1.0), "index": index, "labels": {"class": index}}


def test_the_first_item_of_a_loader_takes_the_first_label_of_its_batch() -> None:
    """Labels of the first batch's first item, not its last."""
    item = first_item(DataLoader(_Labelled(), batch_size=3))
    assert int(item["labels"]["class"]) == 0


def test_a_loader_that_drops_its_only_batch_says_so() -> None:
    """drop_last with a batch larger than the data yields nothing: named as the cause."""
    with pytest.raises(ConfigError, match="drop_last=True drops a last batch smaller than batch_size=4"):
        first_item(DataLoader(_Labelled(), batch_size=4, drop_last=True))


def test_a_batch_sampler_of_ones_own_class_is_recorded() -> None:
    """A subclass of BatchSampler may choose otherwise: its class is named."""

    class Mine(BatchSampler):
        pass

    loader = DataLoader(_Labelled(), batch_sampler=Mine(SequentialSampler(range(3)), 2, False))
    assert loader_sampling(loader) == "batch_sampler Mine"


def test_a_subsets_hash_follows_its_index_order() -> None:
    """Subsets reading 0 then 2, and 2 then 0, are recorded apart."""
    forward, backward = (describe_data(subset, as_items(subset)[1])[0]
                         for subset in (Subset(_Labelled(), [0, 2]), Subset(_Labelled(), [2, 0])))
    assert forward["sampled"]["indices_sha256"] != backward["sampled"]["indices_sha256"]


def test_an_empty_dataset_has_no_first_item() -> None:
    """An empty list is returned as is, with no item (not an IndexError)."""
    assert as_items([]) == ([], None)

"""The item contract for user datasets: each misfit is a one-line error naming the fix."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import timm
import torch

import vitprobe
from vitprobe.data.items import check_finite_images, check_item
from vitprobe.errors import ConfigError, DataError
from vitprobe.results import Run

IMAGE = torch.zeros(3, 32, 32)
OBJECT = torch.zeros(32, 32, dtype=torch.long)
OBJECT[8:24, 8:24] = 1


@pytest.mark.parametrize("item, message", [
    ({"image": [[0.0] * 32] * 3}, r"'image' is a list, not a tensor"),
    ({"image": np.zeros((3, 32, 32))}, r"'image' is torch.float64, not torch.float32"),
    ({"image": IMAGE[0]}, r"shape \[32, 32\]; give one image as \(3, H, W\), without a batch"),
    ({"image": IMAGE[None]}, r"shape \[1, 3, 32, 32\]; give one image as \(3, H, W\)"),
    ({"image": IMAGE[:1]}, r"greyscale: use image.expand\(3, -1, -1\)"),
    ({"image": IMAGE.permute(1, 2, 0)}, r"channels-last \(H, W, 3\): use image.permute\(2, 0, 1\)"),
    ({"image": IMAGE.double()}, r"torch.float64, not torch.float32"),
    ({"image": IMAGE.to(torch.uint8)}, r"torch.uint8, not torch.float32; .*image.float\(\) / 255"),
    ({"image": torch.zeros(3, 64, 64)}, r"images are 64x64 px but the model takes 32x32"),
    ({"image": IMAGE, "labels": 3}, r"'labels' is a int; give a dict of label name -> integer class id"),
    ({"image": IMAGE, "labels": {"c": "cat"}}, r"label 'c' is 'cat', not an integer class id"),
    ({"image": IMAGE, "labels": {"c": 0.5}}, r"label 'c' is 0.5, not an integer class id"),
    ({"image": IMAGE, "labels": {"c": torch.tensor(1.5)}}, r"label 'c' is tensor\(1.5000\), not an integer"),
    ({"image": IMAGE, "mask": OBJECT.float()}, r"'mask' is torch.float32; give integer object ids"),
    ({"image": IMAGE, "mask": OBJECT[:16]}, r"'mask' is \[16, 32\]; give an integer tensor of the image's size \[32, 32\]"),
    ({"image": IMAGE, "mask": OBJECT.tolist()}, r"'mask' is list; give an integer tensor"),
])
def test_a_misfit_item_is_one_line_naming_the_fix(item, message):
    with pytest.raises(ConfigError, match=message) as err:
        check_item(item, "mine", (32, 32))
    assert str(err.value).startswith("dataset mine: ") and "\n" not in str(err.value)


@pytest.mark.parametrize("labels", [{"c": 1}, {"c": True}, {"c": np.int64(2)}, {"c": torch.tensor(3)}, {"c": -1},
                                    {"c": np.array(4)}, {"c": np.bool_(True)}, {"c": 1.0}, {"c": torch.tensor([2])}])
@pytest.mark.parametrize("mask", [OBJECT, OBJECT.to(torch.uint8), OBJECT.bool(), OBJECT.numpy(), None])
@pytest.mark.parametrize("image", [IMAGE, IMAGE.numpy()])
def test_items_that_default_collate_makes_valid_pass(image, labels, mask):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_item({"image": image, "labels": labels, "mask": mask, "extra": "kept"}, "mine", (32, 32))


def test_a_mask_of_only_0_and_255_is_warned_about():
    with pytest.warns(UserWarning, match=r"holds only 0 and 255.*\(mask == 255\).long\(\)"):
        check_item({"image": IMAGE, "mask": (OBJECT * 255).to(torch.uint8)}, "mine")


@pytest.mark.parametrize("scale, looks", [(255.0, "0..255 pixels"), (1.0, "0..1 pixels")])
def test_raw_pixels_are_warned_of_and_normalised_images_are_not(scale, looks):
    pixels = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0)) * scale
    with pytest.warns(UserWarning, match=rf"dataset d: the first image's values lie in .*, like {looks}, not normalised"):
        check_item({"image": pixels}, "d")
    mean, std = torch.tensor([0.485, 0.456, 0.406])[:, None, None], torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_item({"image": (pixels / scale - mean) / std}, "d")


def test_a_label_under_another_key_is_warned_about_naming_labels():
    image = torch.zeros(3, 8, 8)
    with pytest.warns(UserWarning, match=r"dataset d: items have 'label', which vitprobe does not read; the "
                                         r"probes read 'labels': \{name: int\}, e.g. \{'labels': \{'class': item\['label'\]\}\}"):
        check_item({"image": image, "label": 3}, "d")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_item({"image": image, "labels": {"class": 3}, "label": 3}, "d")  # 'labels' given: nothing to say
        check_item({"image": image}, "d")


def test_the_first_item_of_a_dataloader_keeps_every_key_of_its_batch():
    from torch.utils.data import DataLoader

    from vitprobe.data.user_data import first_item

    items = [{"image": torch.full((3, 8, 8), float(i)), "label": i, "index": 10 + i, "note": "x"} for i in range(4)]
    first = first_item(DataLoader(items, batch_size=2))
    assert torch.equal(first["image"], items[0]["image"])
    assert (int(first["label"]), int(first["index"]), first["note"]) == (0, 10, "x")
    with pytest.warns(UserWarning, match="items have 'label', which vitprobe does not read"):
        check_item(first, "loader")


def test_non_finite_images_are_named_by_index():
    images = torch.zeros(4, 3, 8, 8)
    check_finite_images(images, torch.arange(10, 14), "mine")
    images[1, 0, 0, 0], images[3, 2, 7, 7] = float("nan"), float("inf")
    with pytest.raises(DataError, match=r"dataset mine: the image of item 11, 13 holds NaN or infinite"):
        check_finite_images(images, torch.arange(10, 14), "mine")


@pytest.fixture(scope="module")
def model():
    return timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2, num_classes=0)


def test_analyze_takes_a_list_checks_its_first_item_and_each_batch(model, tmp_path):
    items = [{"image": torch.randn(3, 32, 32), "labels": {"c": i % 2}} for i in range(6)]
    run = vitprobe.analyze(model, items, analyses=["attention_distance"], batch_size=4, progress=False)
    dataset = run["attention_distance"].protocol["dataset"]
    assert dataset["spec"] == "list" and dataset["size"] == 6
    other = vitprobe.analyze(model, items[1:] + items[:1], analyses=["attention_distance"], batch_size=4, progress=False)
    assert other["attention_distance"].protocol["dataset"]["first_image_sha256"] != dataset["first_image_sha256"]
    with pytest.warns(UserWarning, match=r"different data \(list, with different first_image_sha256 \(VisionTransformer \| VisionTransformer-2\)\)"):
        vitprobe.compare([run, other], tmp_path / "cmp")
    with pytest.raises(ConfigError, match=r"dataset list: 'labels' is a int"):
        vitprobe.analyze(model, [{**items[0], "labels": 3}], analyses=["attention_distance"], progress=False)
    items[5]["image"] = items[5]["image"] * float("nan")
    with pytest.raises(DataError, match=r"dataset list: the image of item 5 holds NaN"):
        vitprobe.analyze(model, items, analyses=["attention_distance"], batch_size=4, progress=False)


def test_jaccard_says_why_no_image_was_scored(model):
    items = [{"image": torch.randn(3, 32, 32), "mask": torch.zeros(32, 32, dtype=torch.long)} for _ in range(3)]
    with pytest.warns(UserWarning, match=r"attention_jaccard: no image had an object in its mask"):
        run = vitprobe.analyze(model, items, analyses=["attention_jaccard"], progress=False)
    assert run["attention_jaccard"].protocol["images_scored"] == 0
    with pytest.warns(UserWarning, match=r"attention_jaccard: no image had an object in its mask"):  # images seen
        vitprobe.analyze(model, items, analyses=["attention_jaccard"], progress=False,
                         analyzer_params={"attention_jaccard": {"num_artifacts": 0}})


def test_a_dataloader_whose_collate_builds_the_items_is_checked_on_its_first_batch(model):
    raw = [{"image": torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8), "labels": {"c": "ab"[i % 2]}}
           for i in range(8)]

    def collate(items):
        return {"image": torch.stack([(i["image"].float() / 255 - 0.5) / 0.5 for i in items]),
                "labels": {"c": torch.tensor(["ab".index(i["labels"]["c"]) for i in items])}}

    loader = torch.utils.data.DataLoader(raw, batch_size=4, collate_fn=collate)
    run = vitprobe.analyze(model, loader, analyses=["attention_distance"], progress=False)
    assert run["attention_distance"].table["n"].max() == 8
    small = torch.utils.data.DataLoader([{"image": torch.zeros(3, 16, 16)}] * 4, batch_size=4)
    with pytest.raises(ConfigError, match="images are 16x16 px but the model takes 32x32"):
        vitprobe.analyze(model, small, analyses=["attention_distance"], progress=False)


def test_a_torchvision_image_folder_is_read_and_named_by_its_root(model, tmp_path):
    """torchvision's ImageFolder: a transform that stops before ToTensor gives PIL images, which
    the error names with the fix; with it, the protocol records the folder read (``root``)."""
    from PIL import Image
    from torchvision import datasets, transforms

    for index in range(4):
        (tmp_path / f"c{index % 2}").mkdir(exist_ok=True)
        Image.new("RGB", (32, 32), (60 * index, 0, 0)).save(tmp_path / f"c{index % 2}" / f"{index}.png")
    pil = datasets.ImageFolder(str(tmp_path), transform=transforms.Resize((32, 32)))
    with pytest.raises(ConfigError, match=r"^dataset ImageFolder: its images are PIL images, not tensors; end its "
                                          r"transform with transforms.ToTensor\(\) and transforms.Normalize\(mean, std\)"):
        vitprobe.analyze(model, pil, analyses=["fourier"], progress=False)
    with pytest.raises(ConfigError, match=r"^dataset list: items must be \(image, label\) pairs"):  # other items
        vitprobe.analyze(model, [("not an image", 0)], analyses=["fourier"], progress=False)
    tensors = datasets.ImageFolder(str(tmp_path), transform=transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))]))
    run = vitprobe.analyze(model, tensors, analyses=["fourier"], progress=False)
    described = run["fourier"].protocol["dataset"]
    assert described["spec"] == "ImageFolder" and described["root"] == str(tmp_path) and described["size"] == 4


def test_image_label_pairs_are_read_as_items(model):
    """A dataset of (image, label) pairs (torchvision's shape) gives the tables of the same data
    as item dicts through a collate_fn; a DataLoader over pairs is refused, naming the fix."""
    pairs = [(torch.randn(3, 32, 32), i % 2) for i in range(20)]
    direct = vitprobe.analyze(model, pairs, analyses=["knn"], analyzer_params={"knn": {"k": 3}}, progress=False)
    assert direct["knn"].protocol["dataset"]["items"] == "(image, label) pairs, the label named 'class'"
    tensors = vitprobe.analyze(model, torch.utils.data.TensorDataset(torch.stack([x for x, _ in pairs]),
                                                                      torch.tensor([y for _, y in pairs])),
                               analyses=["knn"], analyzer_params={"knn": {"k": 3}}, progress=False)
    small = torch.utils.data.TensorDataset(torch.zeros(2, 3, 16, 16), torch.tensor([0, 1]))
    with pytest.raises(ConfigError, match=r"^dataset TensorDataset: images are 16x16 px"):  # not the wrapper's name
        vitprobe.analyze(model, small, analyses=["knn"], progress=False)
    with pytest.raises(ConfigError, match=r"the DataLoader's batches are lists, not dicts .* pass a Dataset of pairs"):
        vitprobe.analyze(model, torch.utils.data.DataLoader(pairs, batch_size=4), analyses=["knn"], progress=False)

    def collate(batch):
        return {"image": torch.stack([x for x, _ in batch]), "labels": {"class": torch.tensor([y for _, y in batch])}}

    run = vitprobe.analyze(model, torch.utils.data.DataLoader(pairs, batch_size=4, collate_fn=collate),
                           analyses=["knn"], analyzer_params={"knn": {"k": 3}}, progress=False)
    pd.testing.assert_frame_equal(direct["knn"].table, run["knn"].table)
    pd.testing.assert_frame_equal(tensors["knn"].table, run["knn"].table)
    assert set(run["knn"].table["label"]) == {"class"}


def test_the_protocol_counts_the_images_a_subset_or_sampler_chose(model, tmp_path):
    from torch.utils.data import DataLoader, Subset

    from vitprobe.data import resolve_dataset
    from vitprobe.plots.style import protocol_caption

    data = resolve_dataset("synthetic:10", 32)
    whole = vitprobe.analyze(model, data, analyses=["attention_distance"], progress=False)
    cases = {"sampler list": DataLoader(data, batch_size=4, sampler=[0, 2, 4, 6, 8]),
             "drop_last": DataLoader(data, batch_size=4, drop_last=True),
             "Subset": Subset(data, [1, 3, 5])}
    for how, given in cases.items():
        result = vitprobe.analyze(model, given, analyses=["attention_distance"], progress=False)["attention_distance"]
        dataset = result.protocol["dataset"]
        n = int(result.table["n"].max())
        assert n == {"sampler list": 5, "drop_last": 8, "Subset": 3}[how]
        assert dataset["size"] == n and dataset["sampled"]["by"] == how and dataset["sampled"]["of"] == 10
        assert dataset["spec"] == "synthetic:10" and "class_counts" not in dataset
        assert f"synthetic:10 (n={n} of 10 by {how})" in protocol_caption([result.protocol])
        with pytest.warns(UserWarning, match=r"different data \(synthetic:10, with different .*sampled.*size"):
            vitprobe.compare([whole, Run([result], label="part")], tmp_path / how.replace(" ", "_"))
    subsets = [vitprobe.analyze(model, Subset(data, idx), analyses=["attention_distance"], progress=False)
               for idx in ([1, 3, 5], [2, 4, 6])]
    hashes = {r["attention_distance"].protocol["dataset"]["sampled"]["indices_sha256"] for r in subsets}
    assert len(hashes) == 2  # the same number of other images is other data


def test_under_torchrun_a_sampling_dataloader_is_refused(model, monkeypatch):
    import vitprobe.analysis as analysis

    monkeypatch.setattr(analysis, "rank_and_world", lambda: (0, 2))
    data = [{"image": torch.randn(3, 32, 32)} for _ in range(6)]
    loader = torch.utils.data.DataLoader(data, batch_size=2, sampler=[0, 1, 2])
    with pytest.raises(ConfigError, match=r"under torchrun vitprobe shards the data itself, and this DataLoader "
                                          r"reads with sampler list: pass its Dataset"):
        analysis.prepare_analysis(model, loader, ["attention_distance"])
    plain = analysis.prepare_analysis(model, torch.utils.data.DataLoader(data, batch_size=2), ["attention_distance"])
    assert len(plain.loader.sampler) == 3  # rank 0's half


def test_an_item_of_another_size_later_in_the_data_is_named(model):
    items = [{"image": torch.zeros(3, 32, 32), "index": i} for i in range(6)]
    items[4] = {"image": torch.zeros(3, 48, 48), "index": 4}
    with pytest.raises(DataError, match=r"dataset list: the image of the item at index 4 has shape \[3, 48, 48\] and "
                                        r"the batch's first \[3, 32, 32\]; give every image the model's size"):
        vitprobe.analyze(model, items, analyses=["fourier"], batch_size=3, progress=False)


def test_an_image_in_0_1_with_a_black_pixel_is_warned_of() -> None:
    pixels = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
    pixels[:, 0, 0] = 0.0
    with pytest.warns(UserWarning, match="like 0..1 pixels"):
        check_item({"image": pixels}, "d")


def test_a_negative_index_is_refused() -> None:
    from vitprobe.data import resolve_dataset

    with pytest.raises(IndexError, match="out of range"):
        resolve_dataset("synthetic:4", 32)[-1]


def test_one_tuples_are_items_without_labels() -> None:
    from torch.utils.data import TensorDataset

    from vitprobe.data.user_data import ImagePairs, as_items

    wrapped, first = as_items(TensorDataset(torch.zeros(2, 3, 32, 32)))
    assert isinstance(wrapped, ImagePairs) and first is not None and set(first) == {"image", "index"}

"""``voc:PATH[:split]``: PASCAL VOC 2012 segmentation images with their object masks.

PATH may be the VOC2012 folder, the VOCdevkit folder holding it, or a folder holding
VOCdevkit. Items carry ``mask`` = SegmentationObject ids (0 background, 1..K objects,
255 border/ignore) and the label ``class`` = the VOC class (1..20) covering the most
pixels of SegmentationClass, or 0 ("background") when no object is annotated.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image

from vitprobe.data.base import IMAGENET_MEAN, IMAGENET_STD, RawItem, VitprobeDataset
from vitprobe.data.folder import existing_dir, warn_skipped
from vitprobe.data.images import load_index_png, load_rgb, one_line, resize_mask, verify_image
from vitprobe.errors import DataError

VOC_CLASSES = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car",
               "cat", "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person",
               "pottedplant", "sheep", "sofa", "train", "tvmonitor"]
IGNORE = 255
DEFAULT_SPLIT = "val"
SPLIT_NAME = re.compile(r"[A-Za-z0-9_-]+")
_PARTS = {"image": ("JPEGImages", ".jpg"), "objects": ("SegmentationObject", ".png"),
          "classes": ("SegmentationClass", ".png")}


def find_voc_root(spec: str, path: Path) -> Path:
    """The folder that holds JPEGImages and ImageSets/Segmentation."""
    existing_dir(spec, path, "VOC folder")
    for candidate in (path, path / "VOC2012", path / "VOCdevkit" / "VOC2012"):
        if (candidate / "JPEGImages").is_dir() and (candidate / "ImageSets" / "Segmentation").is_dir():
            return candidate
    raise DataError(f"dataset {spec!r}: {path} holds no VOC2012 layout; point it at the folder "
                    f"with JPEGImages, SegmentationObject, SegmentationClass, ImageSets/Segmentation")


def read_split(spec: str, root: Path, split: str) -> list[str]:
    """Image ids listed in ImageSets/Segmentation/<split>.txt (blank lines ignored)."""
    sets = root / "ImageSets" / "Segmentation"
    listing = sets / f"{split}.txt"
    if not listing.is_file():
        names = sorted(p.stem for p in sets.glob("*.txt"))
        raise DataError(f"dataset {spec!r}: no split {split!r} ({listing} missing); "
                        f"available splits: {', '.join(names) or 'none'}")
    ids = [line.strip() for line in listing.read_text(errors="replace").splitlines() if line.strip()]
    if not ids:
        raise DataError(f"dataset {spec!r}: {listing} lists no images; give a non-empty split")
    return ids


def majority_class(classes: np.ndarray) -> int:
    """argmax over c in 1..20 of the pixel count of c (ties: lowest id); 0 when none."""
    counts = np.bincount(classes.ravel(), minlength=256)[1:len(VOC_CLASSES)]
    return int(np.argmax(counts)) + 1 if counts.sum() else 0


class VocDataset(VitprobeDataset):
    """Images and object masks of one VOC segmentation split.

    Each listed id needs its JPEG, SegmentationObject and SegmentationClass files; an id with
    one missing or failing ``Image.verify`` is left out and counted in ``skipped``. Labels are
    read per item; ``class_counts`` reads every class mask once and keeps the result.
    """

    kind = "voc"

    def __init__(self, spec: str, path: Path, image_size: int,
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 split: str | None = None) -> None:
        split = split or DEFAULT_SPLIT
        if not SPLIT_NAME.fullmatch(split):
            raise DataError(f"dataset {spec!r}: split {split!r} is not a plain name; "
                            f"use e.g. train or val")
        super().__init__(spec, image_size, mean, std, class_names={"class": VOC_CLASSES},
                         has_masks=True, split=split)
        self.root = find_voc_root(spec, path)
        listed = {part: set(os.listdir(self.root / folder)) if (self.root / folder).is_dir() else set()
                  for part, (folder, _) in _PARTS.items()}
        self.ids: list[str] = []
        bad: list[tuple[Path, str]] = []
        for image_id in read_split(spec, self.root, split):
            problem = None
            for part, (folder, suffix) in _PARTS.items():
                file = self.root / folder / f"{image_id}{suffix}"
                reason = "missing" if file.name not in listed[part] else verify_image(file)
                if reason is not None:
                    problem = (file, reason)
                    break
            if problem is None:
                problem = self._size_mismatch(image_id)
            if problem is None:
                self.ids.append(image_id)
            else:
                bad.append(problem)
        self.skipped = len(bad)
        if not self.ids:
            raise DataError(f"dataset {spec!r}: none of the {len(bad)} images of split {split!r} "
                            f"has its JPEG and both segmentation PNGs; check {self.root}")
        warn_skipped(spec, bad, "image(s) with a missing or unreadable file, or masks of another size")

    def _size_mismatch(self, image_id: str) -> tuple[Path, str] | None:
        """(mask file, why) when a mask's size differs from its image's (headers only)."""
        sizes = {}
        for part, (folder, suffix) in _PARTS.items():
            with Image.open(self.root / folder / f"{image_id}{suffix}") as header:
                sizes[part] = header.size
        for part in ("objects", "classes"):
            if sizes[part] != sizes["image"]:
                folder, suffix = _PARTS[part]
                return (self.root / folder / f"{image_id}{suffix}",
                        "{}x{} mask for a {}x{} image".format(*sizes[part], *sizes["image"]))
        return None

    def _file(self, part: str, index: int) -> Path:
        folder, suffix = _PARTS[part]
        return self.root / folder / f"{self.ids[index]}{suffix}"

    def __len__(self) -> int:
        return len(self.ids)

    def load(self, index: int) -> RawItem:
        image_file = self._file("image", index)
        objects = load_index_png(self._file("objects", index), self.spec)
        classes = load_index_png(self._file("classes", index), self.spec)
        try:
            with Image.open(image_file) as header:
                width, height = header.size
        except Exception as error:
            raise DataError(f"dataset {self.spec!r}: cannot decode {image_file} "
                            f"({one_line(error)}); remove or replace the file") from error
        if objects.shape != (height, width) or classes.shape != (height, width):
            raise DataError(f"dataset {self.spec!r}: masks of {self.ids[index]} are "
                            f"{objects.shape[1]}x{objects.shape[0]}, image is {width}x{height}; "
                            f"fix or remove this id from the split list")
        image = load_rgb(image_file, self.image_size, self.spec)
        return image, {"class": majority_class(classes)}, resize_mask(objects, self.image_size)

    @cached_property
    def _labels(self) -> np.ndarray:
        return np.array([majority_class(load_index_png(self._file("classes", i), self.spec))
                         for i in range(len(self))], dtype=np.int64)

    def class_counts(self) -> dict[str, list[int]]:
        return {"class": np.bincount(self._labels, minlength=len(VOC_CLASSES)).tolist()}

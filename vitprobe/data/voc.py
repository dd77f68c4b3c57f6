"""``voc:PATH[:split]``: PASCAL VOC 2012 segmentation images with their object masks.

PATH may be the VOC2012 folder, the VOCdevkit folder holding it, or a folder holding
VOCdevkit. Items carry ``mask`` = SegmentationObject ids (0 background, 1..K objects,
255 border/ignore) and the label ``class`` = the VOC class (1..20) covering the most
pixels of SegmentationClass, or 0 ("background") when no object is annotated; a class id
outside 0..20 and 255 is an error, not background.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image

from vitprobe.data.base import IMAGENET_MEAN, IMAGENET_STD, RawItem, VitprobeDataset
from vitprobe.data.folder import existing_dir, warn_skipped
from vitprobe.data.images import INDEX_MODES, check_images, load_index_png, load_rgb, resize_mask, unreadable
from vitprobe.data.items import MASK_IGNORE  # VOC's void label: the border and "difficult" pixels
from vitprobe.data.spec import SPLIT_NAME
from vitprobe.errors import DataError, warn_user

VOC_CLASSES = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car",
               "cat", "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person",
               "pottedplant", "sheep", "sofa", "train", "tvmonitor"]
DEFAULT_SPLIT = "val"
_PARTS = {"image": ("JPEGImages", ".jpg"), "objects": ("SegmentationObject", ".png"),
          "classes": ("SegmentationClass", ".png")}
_HOLDING = {"objects": "object ids", "classes": "class ids"}


def _candidates(path: Path) -> tuple[Path, Path, Path]:
    return path, path / "VOC2012", path / "VOCdevkit" / "VOC2012"


def _voc_root(path: Path) -> Path | None:
    """The folder holding JPEGImages and ImageSets/Segmentation: path itself, its VOC2012, or
    its VOCdevkit/VOC2012; None when there is none."""
    for candidate in _candidates(path):
        if (candidate / "JPEGImages").is_dir() and (candidate / "ImageSets" / "Segmentation").is_dir():
            return candidate
    return None


def looks_like_voc(path: Path) -> bool:
    """Whether path, its VOC2012 or its VOCdevkit/VOC2012 holds a JPEGImages folder (the VOC
    layout, perhaps incomplete: ``voc:`` then says what is missing)."""
    try:
        return any((candidate / "JPEGImages").is_dir() for candidate in _candidates(path))
    except OSError:
        return False


def find_voc_root(spec: str, path: Path) -> Path:
    """The folder that holds JPEGImages and ImageSets/Segmentation (see ``_voc_root``)."""
    existing_dir(spec, path, "VOC folder")
    root = _voc_root(path)
    if root is not None:
        return root
    raise DataError(f"dataset {spec!r}: {path} holds no VOC2012 layout; point it at the folder "
                    f"with JPEGImages, SegmentationObject, SegmentationClass, ImageSets/Segmentation")


def read_split(spec: str, root: Path, split: str) -> list[str]:
    """Image ids listed in ImageSets/Segmentation/<split>.txt, each once in the order first
    listed (blank lines and a UTF-8 byte-order mark ignored; repeats warned about)."""
    sets = root / "ImageSets" / "Segmentation"
    listing = sets / f"{split}.txt"
    if not listing.is_file():
        names = sorted(p.stem for p in sets.glob("*.txt"))
        raise DataError(f"dataset {spec!r}: no split {split!r} ({listing} missing); "
                        f"available splits: {', '.join(names) or 'none'}")
    listed = [line.strip() for line in listing.read_text(encoding="utf-8-sig", errors="replace").splitlines()
              if line.strip()]
    if not listed:
        raise DataError(f"dataset {spec!r}: {listing} lists no images; give a non-empty split")
    counts = Counter(listed)
    if len(counts) < len(listed):
        repeated = sorted(i for i, n in counts.items() if n > 1)
        warn_user(f"dataset {spec!r}: {listing} lists {len(listed) - len(counts)} id(s) more than once "
                  f"({', '.join(repeated[:3])}{', ...' if len(repeated) > 3 else ''}); each image is used once")
    return list(counts)


def majority_class(classes: np.ndarray) -> int:
    """argmax over c in 1..20 of the pixel count of c (ties: lowest id); 0 when none."""
    counts = np.bincount(classes.ravel(), minlength=256)[1:len(VOC_CLASSES)]
    return int(np.argmax(counts)) + 1 if counts.sum() else 0


class VocDataset(VitprobeDataset):
    """Images and object masks of one VOC segmentation split.

    Each listed id needs its JPEG, SegmentationObject and SegmentationClass files, whole when
    built (``check_image``), and masks of its image's size in palette or grey mode; an id
    failing any of this is left out, counted in ``skipped`` and warned about. Images are read
    as stored, without turning them by their EXIF orientation, so that they stay aligned with
    masks drawn over the stored pixels. Labels are read per item; ``class_counts`` reads every
    class mask once and keeps the result.
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
        absent = [folder for folder, _ in _PARTS.values() if not (self.root / folder).is_dir()]
        if absent:
            raise DataError(f"dataset {spec!r}: {self.root} has no {' or '.join(absent)} folder; the "
                            "attention masks need VOC 2012's object and class segmentation PNGs")
        listed = {part: set(os.listdir(self.root / folder)) for part, (folder, _) in _PARTS.items()}
        candidates = read_split(spec, self.root, split)
        files = {image_id: [(part, self.root / folder / f"{image_id}{suffix}")
                            for part, (folder, suffix) in _PARTS.items()] for image_id in candidates}
        present = [file for parts in files.values() for part, file in parts if file.name in listed[part]]
        verdicts = dict(zip(present, check_images(present)))
        self.ids: list[str] = []
        bad: list[tuple[Path, str]] = []
        for image_id, parts in files.items():
            reasons = [(file, verdicts.get(file, "missing")) for _, file in parts]  # not listed: missing
            problem = next(((file, reason) for file, reason in reasons if reason is not None), None)
            if problem is None:
                problem = self._layout_problem(parts)
            if problem is None:
                self.ids.append(image_id)
            else:
                bad.append(problem)
        self.skipped = len(bad)
        if not self.ids:
            raise DataError(f"dataset {spec!r}: none of the {len(bad)} images of split {split!r} "
                            f"has its JPEG and both segmentation PNGs; check {self.root}")
        warn_skipped(spec, bad, "image(s) with a missing or unreadable file, or masks of another "
                                "size or colour mode")

    @staticmethod
    def _layout_problem(parts: list[tuple[str, Path]]) -> tuple[Path, str] | None:
        """(mask file, why) when a mask's size differs from its image's, or it is not a palette
        or grey PNG (headers only); ``parts`` are (part, file) of one id."""
        headers = {}
        for part, file in parts:
            with Image.open(file) as header:
                headers[part] = (file, header.size, header.mode)
        image_size = headers["image"][1]
        for part in ("objects", "classes"):
            file, size, mode = headers[part]
            if size != image_size:
                return file, "{}x{} mask for a {}x{} image".format(*size, *image_size)
            if mode not in INDEX_MODES:
                return file, f"{mode} mask; masks are palette or grey PNGs holding {_HOLDING[part]}"
        return None

    def _file(self, part: str, index: int) -> Path:
        folder, suffix = _PARTS[part]
        return self.root / folder / f"{self.ids[index]}{suffix}"

    def __len__(self) -> int:
        return len(self.ids)

    def load(self, index: int) -> RawItem:
        image_file = self._file("image", index)
        objects = load_index_png(self._file("objects", index), self.spec, _HOLDING["objects"])
        classes = load_index_png(self._file("classes", index), self.spec, _HOLDING["classes"])
        try:
            with Image.open(image_file) as header:
                width, height = header.size
        except Exception as error:
            raise unreadable(self.spec, image_file, error) from error
        if objects.shape != (height, width) or classes.shape != (height, width):
            raise DataError(f"dataset {self.spec!r}: masks of {self.ids[index]} are "
                            f"{objects.shape[1]}x{objects.shape[0]}, image is {width}x{height}; "
                            f"fix or remove this id from the split list")
        image = load_rgb(image_file, self.image_size, self.spec, exif_orientation=False)
        return image, {"class": self._class(index, classes)}, resize_mask(objects, self.image_size)

    def _class(self, index: int, classes: np.ndarray | None = None) -> int:
        """The label of an id: the majority class of its class mask (read unless given),
        which must hold VOC's ids only: 0 background, 1..20 classes, 255 void."""
        if classes is None:
            classes = load_index_png(self._file("classes", index), self.spec, _HOLDING["classes"])
        stray = np.unique(classes[(classes >= len(VOC_CLASSES)) & (classes != MASK_IGNORE)])
        if stray.size:
            raise DataError(f"dataset {self.spec!r}: {self._file('classes', index)} holds class id(s) "
                            f"{', '.join(map(str, stray[:5]))}, outside VOC 2012's 0-20 (and {MASK_IGNORE}, void); "
                            f"voc: reads the 20 VOC classes: fix the mask or remove {self.ids[index]} from the split list")
        return majority_class(classes)

    @cached_property
    def _labels(self) -> np.ndarray:
        return np.array([self._class(i) for i in range(len(self))], dtype=np.int64)

    def class_counts(self) -> dict[str, list[int]]:
        return {"class": np.bincount(self._labels, minlength=len(VOC_CLASSES)).tolist()}

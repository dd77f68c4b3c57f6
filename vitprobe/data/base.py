"""The dataset base class: item layout, normalisation, and the protocol description."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from vitprobe.errors import DataError, check_whole

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
MIN_IMAGE_SIZE = 16

RawItem = tuple[torch.Tensor, dict[str, int], "torch.Tensor | None"]


def check_normalisation(spec: str, mean: Sequence[float], std: Sequence[float]) -> None:
    """Mean and std must be three finite numbers each, std strictly positive."""
    for name, values in (("mean", mean), ("std", std)):
        try:
            numbers = [float(v) for v in values]
        except (TypeError, ValueError):
            raise DataError(f"dataset {spec!r}: {name} must be three numbers, got {values!r}") from None
        if len(numbers) != 3 or not all(math.isfinite(v) for v in numbers):
            raise DataError(f"dataset {spec!r}: {name} must be three finite numbers, got {values!r}")
        if name == "std" and min(numbers) <= 0:
            raise DataError(f"dataset {spec!r}: std must be positive, got {values!r}")


def to_uint8_images(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Inverse of the item normalisation: (B, 3, S, S) ``(x - mean) / std`` -> (B, S, S, 3)
    uint8 pixels ``round(255 * (image * std + mean))``, clamped to [0, 255], on the CPU."""
    images = images.detach().float().cpu()
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return ((images * s + m) * 255.0).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


def check_image_side(spec: str, image_size: int) -> None:
    """The image side must be a whole number of at least MIN_IMAGE_SIZE pixels."""
    check_whole(image_size, f"dataset {spec!r}: image size", MIN_IMAGE_SIZE, DataError)


class VitprobeDataset(Dataset, ABC):
    """Items are ``{"image", "index", "labels"[, "mask"]}`` (see docs/internals.md).

    ``image`` = (x - mean) / std for pixel values x in [0, 1], shape (3, S, S), float32.
    Subclasses implement ``__len__``, ``load(index) -> (image in [0, 1], labels, mask)``
    and ``class_counts()``; every item of one dataset has the same keys.
    """

    kind: str = ""

    def __init__(self, spec: str, image_size: int, mean: Sequence[float], std: Sequence[float],
                 class_names: dict[str, list[str]], has_masks: bool, split: str | None,
                 skipped: int = 0) -> None:
        check_image_side(spec, image_size)
        check_normalisation(spec, mean, std)
        self.spec = spec
        self.image_size = image_size
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self.class_names = class_names
        self.label_names = list(class_names)
        self.num_classes = {name: len(names) for name, names in class_names.items()}
        self.has_masks = has_masks
        self.split = split
        self.skipped = skipped
        self.root: Path | None = None  # the folder read, for datasets read from disk
        self._mean_t = torch.tensor(self.mean, dtype=torch.float32).view(3, 1, 1)
        self._std_t = torch.tensor(self.std, dtype=torch.float32).view(3, 1, 1)

    def __repr__(self) -> str:
        split = f", split {self.split}" if self.split else ""
        return f"{type(self).__name__}({self.spec!r}{split}: {len(self)} images at {self.image_size} px)"

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def load(self, index: int) -> RawItem:
        """Image (3, S, S) float in [0, 1], labels {name: int}, mask (S, S) uint8 or None."""

    @abstractmethod
    def class_counts(self) -> dict[str, list[int]]:
        """Number of items per class, for each label name."""

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"{self.spec}: index {index} out of range 0..{len(self) - 1}")
        image, labels, mask = self.load(index)
        item: dict[str, Any] = {"image": (image - self._mean_t) / self._std_t, "index": index,
                                "labels": labels}
        if self.has_masks:
            item["mask"] = mask
        return item

    def describe(self) -> dict[str, Any]:
        """The dataset's part of a result protocol (JSON-ready)."""
        counts = self.class_counts()
        return {
            "spec": self.spec,
            "kind": self.kind,
            **({"root": str(self.root.resolve())} if self.root is not None else {}),
            "split": self.split,
            "size": len(self),
            "image_size": self.image_size,
            "normalisation": {"mean": list(self.mean), "std": list(self.std)},
            "label_names": list(self.label_names),
            "class_counts": {name: dict(zip(self.class_names[name], counts[name]))
                             for name in self.label_names},
            "has_masks": self.has_masks,
            "skipped": self.skipped,
        }


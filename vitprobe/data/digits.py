"""``digits``: scikit-learn's bundled 8 x 8 handwritten digits (1797 images, no download)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from vitprobe.data.base import IMAGENET_MEAN, IMAGENET_STD, RawItem, VitprobeDataset
from vitprobe.errors import DataError

VAL_EVERY = 5  # split "val" = every 5th image of each class, "train" = the rest


def _rank_in_class(targets: np.ndarray) -> np.ndarray:
    """For each image, how many earlier images share its class."""
    rank = np.zeros(len(targets), dtype=np.int64)
    for label in np.unique(targets):
        members = np.flatnonzero(targets == label)
        rank[members] = np.arange(len(members))
    return rank


class DigitsDataset(VitprobeDataset):
    """Grey 8 x 8 images (ink 0..16 scaled to [0, 1]) upscaled bilinearly, repeated to 3 channels.

    Label ``digit`` (0..9). Split None = all 1797 images; "val" = every 5th image of each
    class (in file order); "train" = the others: a fixed, stratified 80/20 partition.
    """

    kind = "digits"

    def __init__(self, spec: str, image_size: int, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, split: str | None = None) -> None:
        from sklearn.datasets import load_digits

        if split not in (None, "train", "val"):
            raise DataError(f"dataset {spec!r}: unknown split {split!r}; digits has train and val")
        super().__init__(spec, image_size, mean, std,
                         class_names={"digit": [str(d) for d in range(10)]},
                         has_masks=False, split=split)
        bunch = load_digits()
        order = np.arange(len(bunch.target))
        if split is not None:
            order = order[(_rank_in_class(bunch.target) % VAL_EVERY == 0) == (split == "val")]
        self._images = torch.from_numpy(bunch.images[order].astype(np.float32) / 16.0)
        self._targets = bunch.target[order].astype(np.int64)

    def __len__(self) -> int:
        return len(self._targets)

    def load(self, index: int) -> RawItem:
        small = self._images[index][None, None]
        big = F.interpolate(small, size=(self.image_size, self.image_size), mode="bilinear",
                            align_corners=False)
        return big[0].expand(3, -1, -1).clone(), {"digit": int(self._targets[index])}, None

    def class_counts(self) -> dict[str, list[int]]:
        return {"digit": np.bincount(self._targets, minlength=10).tolist()}

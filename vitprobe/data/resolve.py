"""From a spec string to a dataset."""

from __future__ import annotations

from collections.abc import Sequence

from vitprobe.data.base import IMAGENET_MEAN, IMAGENET_STD, VitprobeDataset
from vitprobe.data.digits import DigitsDataset
from vitprobe.data.folder import FolderDataset
from vitprobe.data.spec import parse_spec
from vitprobe.data.synthetic import SyntheticDataset
from vitprobe.data.voc import VocDataset
from vitprobe.errors import DataError


def resolve_dataset(spec: str, image_size: int, mean: Sequence[float] = IMAGENET_MEAN,
                    std: Sequence[float] = IMAGENET_STD, split: str | None = None) -> VitprobeDataset:
    """The dataset a spec names (recorded as :class:`DataSpec` ``text``), with images of
    image_size x image_size normalised (x - mean) / std.

    ``split`` picks a part: synthetic train/val (independent streams of N images), digits
    train/val (80/20), folder ``PATH/<split>``, VOC's ImageSets list (default val). A VOC
    split given both in the spec and here must agree.
    """
    parsed = parse_spec(spec)
    if parsed.kind == "synthetic":
        return SyntheticDataset(parsed.text, parsed.n, parsed.seed, image_size, mean, std, split)
    if parsed.kind == "digits":
        return DigitsDataset(parsed.text, image_size, mean, std, split)
    if parsed.kind == "folder":
        return FolderDataset(parsed.text, parsed.path, image_size, mean, std, split)
    if parsed.split and split and parsed.split != split:
        raise DataError(f"dataset {spec!r}: the spec asks for split {parsed.split!r} but "
                        f"{split!r} was requested; give the split once")
    return VocDataset(parsed.text, parsed.path, image_size, mean, std, split or parsed.split)

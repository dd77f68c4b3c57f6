"""Datasets named by spec strings; items are dicts of image, index, labels and mask."""

from vitprobe.data.base import IMAGENET_MEAN, IMAGENET_STD, VitprobeDataset
from vitprobe.data.loader import make_loader
from vitprobe.data.resolve import resolve_dataset
from vitprobe.data.spec import DataSpec, parse_spec
from vitprobe.data.synthetic import SHAPE_NAMES, TEXTURE_NAMES, render_synthetic

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "SHAPE_NAMES", "TEXTURE_NAMES", "DataSpec",
           "VitprobeDataset", "make_loader", "parse_spec", "render_synthetic", "resolve_dataset"]

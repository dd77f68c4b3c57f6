"""Writers of miniature image trees: an ImageFolder with awkward files, and a VOC2012 tree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

GREY = 200
SIXTEEN_BIT = 128 * 257  # scales to 128 in 8 bits
RGBA_RED_ALPHA = 128
VOC_ID_CLASS = {1: 15, 2: 12}  # object 1 is a person, object 2 a dog
RAW = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}  # normalisation that leaves images in [0, 1]


def _save(image: Image.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def _png_bytes(tmp: Path) -> bytes:
    path = _save(Image.new("RGB", (40, 40), (10, 200, 30)), tmp / "whole.png")
    data = path.read_bytes()
    path.unlink()
    return data


def write_image_folder(tmp_path: Path) -> Path:
    """cats: 6 readable (RGB 90x30, grey, RGBA, 16-bit, 4x4, half-transparent palette) + 2 bad;
    dogs: 2 readable (one nested) + 1 empty file; plus a text file and a hidden file ignored."""
    root = tmp_path / "images"
    wide = np.zeros((30, 90, 3), dtype=np.uint8)
    wide[:, :30] = (255, 0, 0)
    wide[:, 30:60] = (0, 255, 0)
    wide[:, 60:] = (0, 0, 255)
    _save(Image.fromarray(wide), root / "cats" / "wide.png")
    _save(Image.new("L", (20, 24), GREY), root / "cats" / "grey.png")
    _save(Image.new("RGBA", (24, 24), (255, 0, 0, RGBA_RED_ALPHA)), root / "cats" / "rgba.png")
    sixteen = Image.fromarray(np.full((24, 24), SIXTEEN_BIT, dtype=np.uint16))
    _save(sixteen, root / "cats" / "sixteen.png")
    _save(Image.new("RGB", (4, 4), (0, 0, 255)), root / "cats" / "tiny.png")
    halves = np.ones((16, 16), dtype=np.uint8)
    halves[:8] = 0  # top half transparent
    palette = Image.fromarray(halves, "P")
    palette.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    palette.info["transparency"] = 0
    _save(palette, root / "cats" / "palette.png")
    (root / "cats" / "truncated.png").write_bytes(_png_bytes(tmp_path)[:60])
    (root / "cats" / "text.jpg").write_text("this is not an image\n")
    (root / "cats" / "notes.txt").write_text("ignored: not an image extension\n")
    _save(Image.new("RGB", (8, 8)), root / "cats" / ".hidden.png")
    _save(Image.new("RGB", (50, 40), (90, 90, 90)), root / "dogs" / "photo.jpg")
    _save(Image.new("RGB", (33, 31), (5, 6, 7)), root / "dogs" / "nested" / "deep.png")
    (root / "dogs" / "empty.jpg").write_bytes(b"")
    return root


def voc_masks(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(object ids, class ids): object 1 (person, larger) and object 2 (dog), 255 borders."""
    objects = np.zeros((height, width), dtype=np.uint8)
    objects[4:20, 4:20] = 255
    objects[5:19, 5:19] = 1
    objects[20:28, 22:width - 2] = 255
    objects[21:27, 23:width - 3] = 2
    classes = objects.copy()
    for obj, cls in VOC_ID_CLASS.items():
        classes[objects == obj] = cls
    return objects, classes


def _save_palette(ids: np.ndarray, path: Path) -> None:
    image = Image.fromarray(ids, "P")
    image.putpalette(np.random.default_rng(0).integers(0, 256, 768, dtype=np.uint8).tolist())
    _save(image, path)


def write_voc(tmp_path: Path) -> Path:
    """VOCdevkit/VOC2012 with val = a (32x32), b (48x32), c (object mask missing), d (no JPEG);
    train = a."""
    voc = tmp_path / "VOCdevkit" / "VOC2012"
    for image_id, (height, width) in {"a": (32, 32), "b": (32, 48), "c": (32, 32)}.items():
        pixels = np.random.default_rng(len(image_id)).integers(0, 256, (height, width, 3), dtype=np.uint8)
        _save(Image.fromarray(pixels), voc / "JPEGImages" / f"{image_id}.jpg")
        objects, classes = voc_masks(height, width)
        if image_id != "c":
            _save_palette(objects, voc / "SegmentationObject" / f"{image_id}.png")
        _save_palette(classes, voc / "SegmentationClass" / f"{image_id}.png")
    objects, classes = voc_masks(32, 32)
    _save_palette(objects, voc / "SegmentationObject" / "d.png")
    _save_palette(classes, voc / "SegmentationClass" / "d.png")
    sets = voc / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    (sets / "val.txt").write_text("a\nb\nc\nd\n\n")
    (sets / "train.txt").write_text("a\n")
    return tmp_path

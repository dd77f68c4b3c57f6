"""Reading image files with PIL: validity check, any mode to 8-bit RGB, square resize-crop."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from vitprobe.errors import DataError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                              ".ppm", ".pgm", ".pbm"})
SIXTEEN_BIT_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})


def one_line(error: BaseException) -> str:
    """The first line of an exception message, or its type name when it has none."""
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def verify_image(path: Path) -> str | None:
    """None when PIL can parse the file's structure (``Image.verify``, no decoding), else why not."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.verify()
    except Exception as error:  # PIL raises many types (SyntaxError, struct.error, ...) for bad files
        return one_line(error)
    return None


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode as 8-bit RGB.

    16-bit grey (``I;16*``, and ``I`` as PNG opens it) is scaled v / 257 to 0..255, 32-bit float
    ``F`` is clipped to 0..255; alpha is composited on black (rgb * alpha / 255); palette
    images go through RGBA when they carry transparency.
    """
    if image.mode in SIXTEEN_BIT_MODES or image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if image.mode != "F":
            values = values / 257.0
        grey = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32)
        rgb = rgba[..., :3] * (rgba[..., 3:] / 255.0)
        return Image.fromarray(np.rint(rgb).astype(np.uint8), "RGB")
    return image.convert("RGB")


def center_square(width: int, height: int) -> tuple[float, float, float, float]:
    """The centred square of side min(width, height), as a PIL box (left, top, right, bottom).

    Resizing this box to S x S equals resizing the shorter side to S and cropping the centre,
    without ever making the long intermediate image.
    """
    side = min(width, height)
    left = (width - side) / 2
    top = (height - side) / 2
    return left, top, left + side, top + side


def load_rgb(path: Path, size: int, spec: str) -> torch.Tensor:
    """Read one image as a float tensor (3, size, size) in [0, 1]; DataError if it cannot be decoded."""
    try:
        with Image.open(path) as image:
            if image.format == "JPEG":
                image.draft("RGB", (size, size))
            image = ImageOps.exif_transpose(image)
            image = to_rgb(image)
            image = image.resize((size, size), Image.Resampling.BICUBIC,
                                 box=center_square(*image.size))
    except Exception as error:  # decoding errors come in many PIL/zlib types
        raise DataError(f"dataset {spec!r}: cannot decode {path} ({one_line(error)}); "
                        f"remove or replace the file") from error
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255)


def load_index_png(path: Path, spec: str) -> np.ndarray:
    """Read a palette or grey PNG as its raw indices (H, W) uint8 (no colour conversion)."""
    try:
        with Image.open(path) as image:
            if image.mode not in ("P", "L"):
                raise DataError(f"dataset {spec!r}: {path} is a {image.mode} image; masks must be "
                                f"palette or grey PNGs holding object ids")
            return np.asarray(image, dtype=np.uint8).copy()
    except DataError:
        raise
    except Exception as error:
        raise DataError(f"dataset {spec!r}: cannot decode {path} ({one_line(error)}); "
                        f"remove or replace the file") from error


def resize_mask(mask: np.ndarray, size: int) -> torch.Tensor:
    """Nearest-neighbour resize of an id mask with the same centre crop as the image."""
    image = Image.fromarray(mask, "L")
    image = image.resize((size, size), Image.Resampling.NEAREST, box=center_square(*image.size))
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy())

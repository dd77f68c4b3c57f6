"""Reading image files with PIL: validity check, any mode to 8-bit RGB, square resize-crop."""

from __future__ import annotations

import functools
import hashlib
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from PIL import Image, ImageOps

from vitprobe.distributed import rank_and_world
from vitprobe.errors import DataError, brief_reason

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                              ".avif", ".ppm", ".pgm", ".pbm"})
SIXTEEN_BIT_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})
_CHECKED: dict[tuple[int, ...], str | None] = {}  # check_image's verdicts
_CHECKED_LIMIT = 1 << 20  # about 150 MB of remembered verdicts at most
_WHOLE_WHEN_VERIFIED = frozenset({"PNG"})  # verify() reads every chunk and its CRC
_PARALLEL_FROM = 64
_MAX_THREADS = 8


@functools.lru_cache(maxsize=1)
def other_image_suffixes() -> frozenset[str]:
    """Suffixes of the formats PIL can open that are not in IMAGE_EXTENSIONS (.psd, .ico,
    .jp2, ...): files a user may take for images, which a folder dataset leaves out."""
    return frozenset(s for s, f in Image.registered_extensions().items() if f in Image.OPEN) - IMAGE_EXTENSIONS


def check_image(path: Path) -> str | None:
    """None when the file is a whole image that PIL reads, else why not (e.g. "image file is
    truncated").

    Whole means not cut short or damaged anywhere (a broken download, a flipped block), which
    ``Image.verify`` alone, reading headers, misses for most formats: a PNG's ``verify`` checks
    every chunk's CRC up to IEND; a JPEG is decoded at its smallest DCT scale (1/8: every
    coefficient is still read, the inverse transforms are 64x cheaper); other formats (BMP,
    GIF, TIFF, WebP, ...) are decoded. Verdicts are remembered per file identity (device,
    inode, size, modification and change times); errors in reaching the file (permissions, too
    many open files) are not remembered.
    """
    try:
        stat = path.stat()
    except OSError as error:
        return brief_reason(error)
    key = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    if key in _CHECKED:
        return _CHECKED[key]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                kind = image.format
                image.verify()
            if kind not in _WHOLE_WHEN_VERIFIED:
                with Image.open(path) as image:
                    if kind == "JPEG":
                        image.draft(None, (1, 1))
                    image.load()
        reason = None
    except OSError as error:
        if error.errno is not None:  # the file system's, not the image's: not remembered
            return brief_reason(error)
        reason = brief_reason(error)
    except Image.DecompressionBombError as error:
        reason = (f"{brief_reason(error)}; downscale it (in Python, or a --plugin module, raise "
                  "PIL.Image.MAX_IMAGE_PIXELS if you trust the file)")
    except Exception as error:  # PIL raises many types (SyntaxError, struct.error, ...) for bad files
        reason = brief_reason(error)
    if len(_CHECKED) < _CHECKED_LIMIT:
        _CHECKED[key] = reason
    return reason


def check_images(paths: Sequence[Path]) -> list[str | None]:
    """``check_image`` of each path, in the order given, in parallel threads (PIL releases the
    GIL while it decodes).

    Under torch.distributed this is a collective that every rank calls with the same paths:
    rank r checks ``paths[r::world]`` and the verdicts are gathered, so K processes share the
    work instead of each reading every file; ranks that list different files get a DataError.
    """
    rank, world = rank_and_world()
    if world == 1:
        return _check_here(paths)
    own = {index: reason for index, reason in zip(range(rank, len(paths), world), _check_here(paths[rank::world]))
           if reason is not None}
    listing = hashlib.sha1("\0".join(map(str, paths)).encode("utf-8", "surrogateescape")).hexdigest()
    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, (listing, own))
    if any(other != listing for other, _ in gathered):
        where = Path(os.path.commonpath(paths)) if paths else Path(".")
        raise DataError(f"the {world} processes list different image files under {where}; give every "
                        "rank the same files (one shared folder, or identical copies)")
    verdicts: list[str | None] = [None] * len(paths)
    for _, bad in gathered:
        for index, reason in bad.items():
            verdicts[index] = reason
    return verdicts


def _check_here(paths: Sequence[Path]) -> list[str | None]:
    """``check_image`` of each path in this process, on up to 8 threads."""
    if len(paths) < _PARALLEL_FROM:
        return [check_image(path) for path in paths]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=min(_MAX_THREADS, cores)) as pool:
        return list(pool.map(check_image, paths, chunksize=16))


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode as 8-bit RGB.

    16-bit grey (``I;16*``, and ``I`` as PNG opens it) is scaled v / 257 to 0..255; 32-bit float
    ``F`` is read as 0..1 (v * 255) where every value lies in [0, 1], else clipped to 0..255;
    alpha is composited on black (rgb * alpha / 255); palette images go through RGBA when they
    carry transparency.
    """
    if image.mode in SIXTEEN_BIT_MODES or image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if image.mode != "F":
            values = values / 257.0
        elif values.size and 0.0 <= values.min() and values.max() <= 1.0:  # the 0..1 convention of float images
            values = values * 255.0
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


def load_rgb(path: Path, size: int, spec: str, exif_orientation: bool = True) -> torch.Tensor:
    """Read one image as a float tensor (3, size, size) in [0, 1]; DataError if it cannot be decoded.

    With ``exif_orientation`` the image is turned upright as its EXIF Orientation tag says (as
    a photo viewer shows it); without, its pixels are taken as stored (as segmentation masks
    drawn over the stored pixels expect).
    """
    try:
        with warnings.catch_warnings():  # the file was checked: PIL's size warning says nothing new
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if image.format == "JPEG":
                    image.draft("RGB", (size, size))
                if exif_orientation:
                    image = ImageOps.exif_transpose(image)
                image = to_rgb(image)
                image = image.resize((size, size), Image.Resampling.BICUBIC,
                                     box=center_square(*image.size))
    except Exception as error:  # decoding errors come in many PIL/zlib types
        raise unreadable(spec, path, error) from error
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255)


INDEX_MODES = ("P", "L")


def load_index_png(path: Path, spec: str, holding: str) -> np.ndarray:
    """Read a palette or grey PNG as its raw indices (H, W) uint8 (no colour conversion);
    ``holding`` says what the indices are, for the error on any other mode."""
    try:
        with Image.open(path) as image:
            if image.mode not in INDEX_MODES:
                raise DataError(f"dataset {spec!r}: {path} is a {image.mode} image; masks must be "
                                f"palette or grey PNGs holding {holding}")
            return np.asarray(image, dtype=np.uint8).copy()
    except DataError:
        raise
    except Exception as error:
        raise unreadable(spec, path, error) from error


def unreadable(spec: str, path: Path, error: BaseException) -> DataError:
    """The one-line error for a file of the dataset that cannot be read while the data is
    streamed: gone since the dataset was built, not readable, or not decodable."""
    if isinstance(error, FileNotFoundError):
        return DataError(f"dataset {spec!r}: {path} is gone (it was there when the dataset was built); "
                         "restore it, or rerun to leave it out")
    if isinstance(error, PermissionError):
        return DataError(f"dataset {spec!r}: {path} cannot be read (permission denied); make it readable")
    return DataError(f"dataset {spec!r}: cannot decode {path} ({brief_reason(error)}); remove or replace the file")


def resize_mask(mask: np.ndarray, size: int) -> torch.Tensor:
    """Nearest-neighbour resize of an id mask with the same centre crop as the image."""
    image = Image.fromarray(mask, "L")
    image = image.resize((size, size), Image.Resampling.NEAREST, box=center_square(*image.size))
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy())

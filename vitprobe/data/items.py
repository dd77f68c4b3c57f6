"""The item contract for datasets a user brings, checked on the first item before a pass.

An item is ``{"image": float32 (3, H, W) tensor, normalised as the model expects,
"index": int, "labels": {name: int}, "mask": integer (H, W) tensor}`` (all but ``image``
optional; mask values: 0 background, 1..254 object ids, 255 ignored). A misfit is a
one-line ConfigError that names the dataset and the fix, instead of a torch error from
inside the model or an analysis; a mask of only 0 and 255 (no object) is warned about.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from vitprobe.errors import ConfigError, DataError, abbreviate, warn_user

MASK_IGNORE = 255
LABEL_LOOKALIKES = ("label", "target", "targets", "class", "y")  # keys meant as 'labels'


def check_item(item: Mapping[str, Any], name: str, size: tuple[int, int] | None = None) -> None:
    """Raise ConfigError unless ``item`` keeps the contract above, as torch's default collate
    reads it (NumPy arrays are taken as tensors); with ``size``, the image must be ``size`` =
    (H, W) pixels (the model's input)."""
    where = f"dataset {name}"
    image = check_image_of(item, name)
    if size is not None:
        _check_image_size(image, name, size)
    if "labels" in item:
        _check_labels(item["labels"], where)
    else:
        near = [key for key in LABEL_LOOKALIKES if key in item]
        if near:
            warn_user(f"{where}: items have {near[0]!r}, which vitprobe does not read; the probes read "
                      f"'labels': {{name: int}}, e.g. {{'labels': {{'class': item[{near[0]!r}]}}}}")
    if "mask" in item and item["mask"] is not None:
        _check_mask(_as_tensor(item["mask"]), tuple(image.shape[-2:]), where)


def check_image_of(item: Mapping[str, Any], name: str) -> torch.Tensor:
    """``item``'s image, checked as :func:`check_item` checks it (a float32 (3, H, W) tensor;
    warned where its values read as raw pixels): all that training reads of an item."""
    image = _as_tensor(item["image"])
    _check_image(image, f"dataset {name}")
    _warn_if_unnormalised(image, f"dataset {name}")
    return image


def _as_tensor(value: Any) -> Any:
    """A NumPy array as the tensor default collate makes of it; anything else unchanged."""
    return torch.as_tensor(value) if isinstance(value, np.ndarray) and value.dtype != object else value


def _check_image(image: Any, where: str) -> None:
    if not isinstance(image, torch.Tensor):
        raise ConfigError(f"{where}: 'image' is a {type(image).__name__}, not a tensor; give a float32 "
                          "(3, H, W) tensor normalised like the model's training images "
                          "(e.g. torchvision's to_tensor, then normalize)")
    shape = list(image.shape)
    if image.dim() != 3:
        raise ConfigError(f"{where}: 'image' has shape {shape}; give one image as (3, H, W), "
                          "without a batch dimension")
    if shape[0] != 3:
        if shape[-1] == 3:
            fix = "it looks channels-last (H, W, 3): use image.permute(2, 0, 1)"
        elif shape[0] == 1:
            fix = "it is greyscale: use image.expand(3, -1, -1)"
        else:
            fix = "give RGB images"
        raise ConfigError(f"{where}: 'image' has shape {shape}, not 3 channels first; {fix}")
    if image.dtype != torch.float32:
        raise ConfigError(f"{where}: 'image' is {image.dtype}, not torch.float32; convert it "
                          "(uint8 pixels: image.float() / 255, then normalise)")


def _warn_if_unnormalised(image: torch.Tensor, where: str) -> None:
    """Warn when an image's values read as raw pixels (up to 255, or all within 0..1) rather
    than normalised ones (x - mean) / std, which are negative wherever a pixel is below the mean."""
    low, high = float(image.min()), float(image.max())
    if high > 20 or (0 <= low < high <= 1):
        looks = "0..255 pixels" if high > 20 else "0..1 pixels"
        warn_user(f"{where}: the first image's values lie in {low:.3g}..{high:.3g}, like {looks}, not normalised "
                  "ones; normalise with the model's mean and std, (x - mean) / std (torchvision's Normalize; "
                  "ImageNet's for most checkpoints), or the model sees shifted inputs")


def _check_image_size(image: Any, name: str, size: tuple[int, int]) -> None:
    """Raise ConfigError unless the last two dimensions of ``image`` are ``size`` = (H, W)."""
    shape = list(getattr(image, "shape", ()))
    if len(shape) >= 2 and tuple(shape[-2:]) != size:
        raise ConfigError(f"dataset {name}: images are {shape[-2]}x{shape[-1]} px but the model takes "
                          f"{size[0]}x{size[1]}; resize them to {size[0]} px, or load the model at "
                          f"their size (--img-size {shape[-1]}; Python: load_model(path, img_size={shape[-1]}), or a "
                          f"timm model built with img_size={shape[-1]})")


def _is_class_id(value: Any) -> bool:
    """An int or bool, or a whole float, as a Python, NumPy or one-element torch value."""
    if isinstance(value, (torch.Tensor, np.ndarray)):
        if value.size != 1 if isinstance(value, np.ndarray) else value.numel() != 1:
            return False
        value = value.item()
    elif isinstance(value, np.generic):
        value = value.item()
    return isinstance(value, numbers.Integral) or (isinstance(value, float) and value.is_integer())


def _check_labels(labels: Any, where: str) -> None:
    if not isinstance(labels, Mapping):
        raise ConfigError(f"{where}: 'labels' is a {type(labels).__name__}; give a dict of label name "
                          "-> integer class id, e.g. {'class': 3}")
    for key, value in labels.items():
        if not _is_class_id(value):
            raise ConfigError(f"{where}: label {key!r} is {value!r}, not an integer class id; map the "
                              "classes to 0..K-1 (negative ids are left out of the probes)")


def _check_mask(mask: Any, image_size: tuple[int, ...], where: str) -> None:
    if not isinstance(mask, torch.Tensor) or mask.dim() != 2 or tuple(mask.shape) != image_size:
        shape = list(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ConfigError(f"{where}: 'mask' is {shape}; give an integer tensor of the image's size "
                          f"{list(image_size)} (0 background, 1..254 objects, {MASK_IGNORE} ignored)")
    if mask.is_floating_point() or mask.is_complex():
        raise ConfigError(f"{where}: 'mask' is {mask.dtype}; give integer object ids (0 background, "
                          f"1..254 objects, {MASK_IGNORE} ignored), e.g. (mask > 0.5).long()")
    if set(torch.unique(mask).tolist()) == {0, MASK_IGNORE}:
        warn_user(f"{where}: the first item's 'mask' holds only 0 and {MASK_IGNORE}, and {MASK_IGNORE} "
                  f"means 'ignored', so it marks no object; if {MASK_IGNORE} is your foreground, give "
                  f"objects as 1, e.g. (mask == {MASK_IGNORE}).long()")


def check_finite_images(images: torch.Tensor, index: torch.Tensor, name: str) -> None:
    """Raise DataError naming the items (by index) whose image holds a NaN or an infinity
    (read off the per-image sums, one cheap pass: a NaN or inf makes its image's sum one)."""
    finite = torch.isfinite(images.flatten(1).sum(dim=1, dtype=torch.float32))
    if not bool(finite.all()):
        bad = torch.as_tensor(index).reshape(-1)[~finite.cpu()].tolist()
        raise DataError(f"dataset {name}: the image of item {abbreviate([str(i) for i in bad], 5)} holds NaN or infinite values; "
                        "fix or drop those items (every analysis would turn NaN)")

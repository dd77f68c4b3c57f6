"""Tensor augmentations: determinism under a generator, sizes, and known answers of each operation."""

from __future__ import annotations

import math

import pytest
import torch

from vitprobe.train.views import (IMAGENET_MEAN, IMAGENET_STD, ViewSpec, _shift_hue, colour_jitter,
                                  crop_box, gaussian_blur, make_view, make_views, patch_multiple,
                                  solarize)

MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(3, 1, 1)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def normalised_image(seed: int = 0, size: int = 32) -> torch.Tensor:
    pixels = torch.rand(3, size, size, generator=gen(seed))
    return (pixels - MEAN) / STD


FULL = ViewSpec(16, scale=(0.2, 1.0), blur_p=0.5, solarize_p=0.5)


def test_view_deterministic_given_generator_and_sized() -> None:
    img = normalised_image()
    a = make_views(img, [FULL, FULL, FULL], gen(7))
    b = make_views(img, [FULL, FULL, FULL], gen(7))
    assert a.shape == (3, 3, 16, 16)
    assert torch.equal(a, b)
    assert not torch.equal(a, make_views(img, [FULL, FULL, FULL], gen(8)))
    assert not torch.equal(a[0], a[1])  # successive views draw fresh randomness


def test_identity_spec_returns_the_image() -> None:
    img = normalised_image()
    spec = ViewSpec(32, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, grey_p=0.0)
    assert torch.allclose(make_view(img, spec, gen(0)), img, atol=1e-5)


def test_flip_only_spec_flips() -> None:
    img = normalised_image()
    spec = ViewSpec(32, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=1.0, jitter_p=0.0, grey_p=0.0)
    assert torch.allclose(make_view(img, spec, gen(0)), img.flip(-1), atol=1e-5)


def test_solarize_only_spec_solarizes() -> None:
    img = normalised_image()
    spec = ViewSpec(32, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, grey_p=0.0, solarize_p=1.0)
    pixels = make_view(img, spec, gen(0)) * STD + MEAN
    assert torch.allclose(pixels, solarize(img * STD + MEAN), atol=1e-5)


@pytest.mark.parametrize("size", [32, 64])
def test_blur_sigma_is_given_at_224_px_and_scaled_to_the_view(size: int) -> None:
    """A sigma of 2 at 224 px is 2 x size / 224 px on a view of ``size``: the same blur relative to the image."""
    img = normalised_image(size=size)
    spec = ViewSpec(size, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, grey_p=0.0,
                    blur_p=1.0, blur_sigma=(2.0, 2.0))
    pixels = make_view(img, spec, gen(0)) * STD + MEAN
    assert torch.allclose(pixels, gaussian_blur(img * STD + MEAN, 2.0 * size / 224), atol=1e-5)


def test_blur_of_a_smaller_crop_is_scaled_by_the_image_size() -> None:
    """DINO's 96 px crops of 224 px images are blurred with sigma 0.1-2 px as its global crops:
    a 16 px crop of a 64 px image takes sigma x 64 / 224, not x 16 / 224."""
    img = normalised_image(size=16)
    spec = ViewSpec(16, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, grey_p=0.0,
                    blur_p=1.0, blur_sigma=(2.0, 2.0), image_size=64)
    pixels = make_view(img, spec, gen(0)) * STD + MEAN
    assert torch.allclose(pixels, gaussian_blur(img * STD + MEAN, 2.0 * 64 / 224), atol=1e-5)


def test_grey_spec_gives_equal_channels() -> None:
    img = normalised_image()
    spec = ViewSpec(32, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, grey_p=1.0)
    pixels = make_view(img, spec, gen(0)) * STD + MEAN
    assert torch.allclose(pixels[0], pixels[1], atol=1e-5) and torch.allclose(pixels[1], pixels[2], atol=1e-5)
    expected = 0.299 * (img * STD + MEAN)[0] + 0.587 * (img * STD + MEAN)[1] + 0.114 * (img * STD + MEAN)[2]
    assert torch.allclose(pixels[0], expected, atol=1e-5)


@pytest.mark.parametrize("scale", [(0.05, 0.4), (0.4, 1.0)])
def test_crop_box_in_bounds_with_requested_area(scale: tuple[float, float]) -> None:
    for seed in range(50):
        top, left, h, w = crop_box(64, 48, scale, (3 / 4, 4 / 3), gen(seed))
        assert 0 <= top and top + h <= 64 and 0 <= left and left + w <= 48
        frac = h * w / (64 * 48)
        assert scale[0] * 0.8 <= frac <= scale[1] * 1.2  # rounding of h, w to whole pixels


def test_solarize_known_values() -> None:
    x = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0])
    assert torch.allclose(solarize(x), torch.tensor([0.0, 0.25, 0.5, 0.25, 0.0]))


def test_gaussian_blur_keeps_constants_and_mass_and_smooths() -> None:
    const = torch.full((3, 16, 16), 0.3)
    assert torch.allclose(gaussian_blur(const, 1.5), const, atol=1e-6)
    impulse = torch.zeros(3, 17, 17)
    impulse[:, 8, 8] = 1.0
    out = gaussian_blur(impulse, 1.0)
    assert torch.allclose(out.sum((1, 2)), torch.ones(3), atol=1e-5)
    # separable Gaussian: out[8, 8 + 1] / out[8, 8] = exp(-1 / (2 sigma^2)) up to kernel normalisation
    assert math.isclose(float(out[0, 8, 9] / out[0, 8, 8]), math.exp(-0.5), rel_tol=1e-4)


def test_zero_jitter_is_identity() -> None:
    img = torch.rand(3, 4, 4, generator=gen(1))
    assert torch.equal(colour_jitter(img, (0.0, 0.0, 0.0, 0.0), gen(0)), img)


def test_hue_rotation_by_a_third_turns_red_into_green_and_keeps_grey() -> None:
    red = torch.zeros(3, 2, 2)
    red[0] = 1.0
    green = torch.zeros(3, 2, 2)
    green[1] = 1.0
    assert torch.allclose(_shift_hue(red, 1 / 3), green, atol=1e-6)
    grey = torch.full((3, 2, 2), 0.4)
    assert torch.allclose(_shift_hue(grey, 0.25), grey, atol=1e-6)


def test_patch_multiple() -> None:
    assert patch_multiple(32 * 96 / 224, 4) == 12
    assert patch_multiple(96, 16) == 96
    assert patch_multiple(3, 16) == 16

"""Tensor augmentations: determinism under a generator, sizes, and known answers of each operation."""

from __future__ import annotations

import colorsys
import math

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from scipy import ndimage
from torchvision.transforms import RandomResizedCrop

from vitprobe.train.views import (IMAGENET_MEAN, IMAGENET_STD, ViewSpec, _grey, _shift_hue, colour_jitter,
                                  crop_box, gaussian_blur, make_view, make_views, patch_multiple,
                                  resized_crop, solarize)

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


@pytest.mark.parametrize("height,width,scale", [(10, 100, (0.5, 1.0)), (100, 10, (0.5, 1.0)), (10, 10, (1.5, 2.0))])
def test_crop_box_falls_back_to_torchvisions_central_crop(height: int, width: int, scale) -> None:
    """No try can succeed (a crop of half a 10 x 100 image is at least 19 px high at aspect <= 4/3,
    or the area exceeds the image): the central crop with the aspect clamped to the ratio range,
    as RandomResizedCrop.get_params (deterministic on this path)."""
    ratio = (3 / 4, 4 / 3)
    expected = RandomResizedCrop.get_params(torch.zeros(1, height, width), list(scale), list(ratio))
    assert crop_box(height, width, scale, ratio, gen(0)) == tuple(expected)


def test_crop_box_tries_ten_times_before_the_fallback() -> None:
    """On a 64 x 48 image at scale 0.4-1 about a third of single draws do not fit; with ten tries
    (torchvision) the full-image fallback is almost never taken."""
    boxes = [crop_box(64, 48, (0.4, 1.0), (3 / 4, 4 / 3), gen(s)) for s in range(300)]
    assert sum(b == (0, 0, 64, 48) for b in boxes) <= 3


def test_crop_box_position_is_uniform_over_every_fitting_offset() -> None:
    """A 5 x 5 crop of a 10 x 10 image may start at rows and columns 0..5, the last included."""
    boxes = [crop_box(10, 10, (0.25, 0.25), (1.0, 1.0), gen(s)) for s in range(300)]
    assert {b[2:] for b in boxes} == {(5, 5)}
    assert {b[0] for b in boxes} == set(range(6)) and {b[1] for b in boxes} == set(range(6))


def test_crop_box_aspect_is_log_uniform() -> None:
    """log(aspect) uniform on (-log 4, log 4): as many wide crops as tall ones (a uniform aspect
    on (1/4, 4) would make 80% of them wide)."""
    boxes = [crop_box(1000, 1000, (0.1, 0.1), (1 / 4, 4.0), gen(s)) for s in range(400)]
    wide = sum(w > h for _, _, h, w in boxes) / len(boxes)
    assert 0.42 < wide < 0.58


@pytest.mark.parametrize("box,size", [((3, 5, 24, 20), 10), ((0, 0, 8, 12), 20)])
def test_resized_crop_matches_torchvision(box, size: int) -> None:
    """Bilinear, half-pixel centres (align_corners False) and antialiasing when shrinking, as
    torchvision's resized_crop on tensors."""
    img = torch.rand(3, 32, 32, generator=gen(0))
    expected = TF.resized_crop(img, *box, [size, size], antialias=True)
    assert torch.allclose(resized_crop(img, box, size), expected, atol=1e-5)


def test_hue_shift_matches_colorsys() -> None:
    """The HSV round trip of every pixel against Python's colorsys, over all six hue sectors."""
    x = torch.rand(3, 8, 8, generator=gen(0), dtype=torch.float64)
    for shift in (0.1, -0.3, 0.45):
        out = _shift_hue(x, shift)
        for i in range(8):
            for j in range(8):
                h, s, v = colorsys.rgb_to_hsv(*x[:, i, j].tolist())
                expected = colorsys.hsv_to_rgb((h + shift) % 1.0, s, v)
                assert out[:, i, j].tolist() == pytest.approx(expected, abs=1e-9)


def test_colour_jitter_is_torchvisions_ops_in_a_random_order() -> None:
    """For each op in randperm order, a factor uniform in [1 - s, 1 + s] (hue: shift in [-s, s])
    drawn when the op runs, applied as torchvision's adjust_brightness / contrast (blend with
    the mean grey) / saturation (blend with the grey image) / hue. The draws are replayed from
    a twin generator; torchvision's grey weights are 0.2989, 0.587, 0.114 (hence atol)."""
    strengths = (0.4, 0.4, 0.2, 0.1)
    ops = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
    orders = set()
    for seed in range(20):
        x = torch.rand(3, 6, 6, generator=gen(100 + seed))
        twin = gen(seed)
        expected = x
        order = torch.randperm(4, generator=twin).tolist()
        orders.add(tuple(order))
        for op in order:
            u = torch.rand((), generator=twin).item()
            s = strengths[op]
            factor = (-s + 2 * s * u) if op == 3 else (1 - s + 2 * s * u)
            expected = ops[op](expected, factor)
        assert torch.allclose(colour_jitter(x, strengths, gen(seed)), expected, atol=1e-3), seed
    assert len(orders) > 10


@pytest.mark.parametrize("sigma", [1.0, 1.5])
def test_gaussian_blur_matches_scipy(sigma: float) -> None:
    """Kernel radius ceil(3 sigma) (scipy: int(3 sigma + 0.5), the same for these sigmas) and
    torch's reflect padding (scipy's "mirror": the edge pixel is not repeated)."""
    x = torch.rand(3, 16, 16, generator=gen(0), dtype=torch.float64)
    expected = ndimage.gaussian_filter(x.numpy(), sigma=(0, sigma, sigma), mode="mirror", truncate=3.0)
    assert np.allclose(gaussian_blur(x, sigma).numpy(), expected, atol=1e-10)


def test_solarize_inverts_at_and_above_any_threshold() -> None:
    x = torch.tensor([0.2, 0.3, 0.4])
    assert torch.allclose(solarize(x, threshold=0.3), torch.tensor([0.2, 0.7, 0.6]))


def test_jitter_comes_before_greyscale() -> None:
    """DINO / MoCo v3 / BYOL: ColorJitter, then RandomGrayscale. A hue shift changes the luma
    of a colourful image, so grey(hue(x)) differs from grey(x) = hue(grey(x))."""
    pixels = torch.rand(3, 32, 32, generator=gen(0))
    img = (pixels - MEAN) / STD
    spec = ViewSpec(32, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0, jitter_p=1.0,
                    jitter=(0.0, 0.0, 0.0, 0.5), grey_p=1.0)
    out = make_view(img, spec, gen(1)) * STD + MEAN
    assert torch.allclose(out[0], out[1], atol=1e-5) and torch.allclose(out[1], out[2], atol=1e-5)
    assert (out[0] - _grey(pixels)[0]).abs().max() > 0.01


def test_view_clamps_the_denormalised_input_to_pixels_in_0_1() -> None:
    """Photometric operations run on [0, 1] pixels: an input whose pixels overshoot (e.g. after a
    bicubic resize) is clamped first; the identity spec returns the clamped image."""
    pixels = torch.rand(3, 16, 16, generator=gen(0)) * 2 - 0.5
    spec = ViewSpec(16, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, grey_p=0.0)
    out = make_view((pixels - MEAN) / STD, spec, gen(0)) * STD + MEAN
    assert torch.allclose(out, pixels.clamp(0, 1), atol=1e-5)


def test_patch_multiple_rounds_to_the_nearest() -> None:
    assert patch_multiple(15, 4) == 16 and patch_multiple(13.9, 4) == 12 and patch_multiple(96 * 224 / 224, 16) == 96

"""vitprobe's shapes-and-textures set, rendered on the fly from (seed, split stream, index).

Each image holds ONE object: one of 8 shapes filled with one of 8 textures, on a background
of another texture. Shape is a low-frequency cue: a light object lies on a dark background or a
dark object on a light one, in opposite hues, so a blurred image still shows the silhouette.
Texture is a high-frequency cue (periods of 1/9 to 1/6 of the image side: 3.6-5.3 px at 32 px,
25-37 px at 224 px), drawn at full contrast inside the object and at low contrast (0.1) on the
background. Labels are exactly balanced and independent: indices come in blocks of 64, and each
block holds every (shape, texture) pair once, in a seeded random order.

What is NOT labelled varies little on purpose: the object's hue is one of 3, the background's is
its opposite, and the colours are otherwise fixed. With freely drawn colours and full-contrast
backgrounds, self-supervised instance discrimination is solved by those unlabelled cues and a
k-NN on the shape label stays at a random encoder's level (README, "Evidence that it learns").
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from vitprobe.data.base import IMAGENET_MEAN, IMAGENET_STD, RawItem, VitprobeDataset, check_image_side
from vitprobe.data.shapes import SHAPES
from vitprobe.data.textures import TEXTURES
from vitprobe.errors import DataError

SHAPE_NAMES = list(SHAPES)
TEXTURE_NAMES = list(TEXTURES)
BLOCK = len(SHAPE_NAMES) * len(TEXTURE_NAMES)
SPLIT_STREAMS = {None: 0, "train": 0, "val": 1}

_LABELS, _SCENE, _TEXTURE = 0, 1, 2  # purposes in the seed sequence, so the streams never overlap


@dataclass(frozen=True)
class Scene:
    """Everything drawn for one image; positions and sizes in units of the image side."""

    shape: int
    texture: int
    background_texture: int
    center: tuple[float, float]
    radius: float
    angle: float
    object_colors: tuple[tuple[float, float, float], tuple[float, float, float]]
    background_colors: tuple[tuple[float, float, float], tuple[float, float, float]]
    object_period: float
    background_period: float
    texture_seeds: tuple[list[int], list[int]]


def _block_order(seed: int, stream: int, block: int) -> np.ndarray:
    return np.random.default_rng([seed, stream, _LABELS, block]).permutation(BLOCK)


def labels_for(index: int, seed: int, stream: int = 0) -> tuple[int, int]:
    """(shape, texture) of an index: pair = order[index % 64] of its block; shape = pair // 8."""
    pair = int(_block_order(seed, stream, index // BLOCK)[index % BLOCK])
    return divmod(pair, len(TEXTURE_NAMES))


OBJECT_HUES = (0.0, 1 / 3, 2 / 3)
SATURATION = 0.8
LIGHT_FILL, DARK_FILL = (0.55, 1.0), (0.1, 0.5)  # HSV values of the object's two colours
LIGHT_GROUND, DARK_GROUND, GROUND_CONTRAST = 0.8, 0.25, 0.1  # background value: centre, spread


def _colors(hue: float, values: tuple[float, float]) -> tuple[tuple[float, float, float], ...]:
    return tuple(colorsys.hsv_to_rgb(hue, SATURATION, value) for value in values)


def scene_for(index: int, seed: int, stream: int = 0) -> Scene:
    """Draw the scene of one index; depends on (seed, stream, index) only."""
    shape, texture = labels_for(index, seed, stream)
    rng = np.random.default_rng([seed, stream, _SCENE, index])
    others = [t for t in range(len(TEXTURE_NAMES)) if t != texture]
    background_texture = int(rng.choice(others))
    radius = rng.uniform(0.3, 0.45)  # large enough that shape and fill dominate a 32 px image
    center = tuple(rng.uniform(radius + 0.02, 1 - radius - 0.02, size=2))
    hue = OBJECT_HUES[int(rng.integers(len(OBJECT_HUES)))]
    light_object = bool(rng.random() < 0.5)
    ground = DARK_GROUND if light_object else LIGHT_GROUND
    return Scene(
        shape=shape, texture=texture, background_texture=background_texture,
        center=(float(center[0]), float(center[1])), radius=float(radius),
        angle=float(rng.uniform(0, 2 * np.pi)),
        object_colors=_colors(hue, LIGHT_FILL if light_object else DARK_FILL),
        background_colors=_colors((hue + 0.5) % 1.0, (ground - GROUND_CONTRAST / 2,
                                                      ground + GROUND_CONTRAST / 2)),
        object_period=float(rng.uniform(1 / 9, 1 / 6)),
        background_period=float(rng.uniform(1 / 9, 1 / 6)),
        texture_seeds=([seed, stream, _TEXTURE, index, 0], [seed, stream, _TEXTURE, index, 1]),
    )


def _paint(u: np.ndarray, v: np.ndarray, texture: int, period: float, seed: list[int],
           colors: Sequence[Sequence[float]]) -> np.ndarray:
    """colour = c0 + t (c1 - c0) for the texture's pattern t in [0, 1]; shape (3, H, W)."""
    pattern = TEXTURES[TEXTURE_NAMES[texture]](u, v, period, np.random.default_rng(seed))
    c0, c1 = (np.asarray(c, dtype=np.float32)[:, None, None] for c in colors)
    return c0 + pattern[None] * (c1 - c0)


def render_scene(scene: Scene, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Render a scene at size x size: (uint8 3 x H x W image, uint8 H x W mask, 1 = object)."""
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size
    u, v = np.meshgrid(coords, coords)
    dx = (u - scene.center[0]) / scene.radius
    dy = (scene.center[1] - v) / scene.radius
    cos, sin = math.cos(scene.angle), math.sin(scene.angle)
    inside = SHAPES[SHAPE_NAMES[scene.shape]](cos * dx + sin * dy, cos * dy - sin * dx)
    seeds = scene.texture_seeds
    foreground = _paint(u, v, scene.texture, scene.object_period, seeds[0], scene.object_colors)
    background = _paint(u, v, scene.background_texture, scene.background_period, seeds[1],
                        scene.background_colors)
    image = np.where(inside[None], foreground, background)
    image *= 255
    return np.rint(image, out=image).astype(np.uint8), inside.astype(np.uint8)


def render_synthetic(index: int, seed: int = 0, size: int = 224,
                     split: str | None = None) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Image ``index`` of ``synthetic:N:seed`` (its ``split``) before normalisation, to look at:
    (uint8 H x W x 3, uint8 foreground mask, {"shape", "texture"} class indices)."""
    stream = split_stream("render_synthetic", split)
    check_image_side("render_synthetic", size)
    scene = scene_for(index, seed, stream)
    image, mask = render_scene(scene, size)
    return image.transpose(1, 2, 0).copy(), mask, {"shape": scene.shape, "texture": scene.texture}


def split_stream(spec: str, split: str | None) -> int:
    """None and "train" share stream 0; "val" is an independent stream 1 of the same size."""
    if split not in SPLIT_STREAMS:
        raise DataError(f"dataset {spec!r}: unknown split {split!r}; synthetic has train and val")
    return SPLIT_STREAMS[split]


class SyntheticDataset(VitprobeDataset):
    """``synthetic:N[:seed]``: N images rendered in __getitem__ (nothing is cached)."""

    kind = "synthetic"

    def __init__(self, spec: str, n: int, seed: int, image_size: int,
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 split: str | None = None) -> None:
        self.stream = split_stream(spec, split)
        super().__init__(spec, image_size, mean, std,
                         class_names={"shape": SHAPE_NAMES, "texture": TEXTURE_NAMES},
                         has_masks=True, split=split)
        self.n = n
        self.seed = seed

    def __len__(self) -> int:
        return self.n

    def load(self, index: int) -> RawItem:
        scene = scene_for(index, self.seed, self.stream)
        image, mask = render_scene(scene, self.image_size)
        tensor = torch.from_numpy(image).float().div_(255)
        return tensor, {"shape": scene.shape, "texture": scene.texture}, torch.from_numpy(mask)

    def class_counts(self) -> dict[str, list[int]]:
        """Full blocks hold every pair once; only the last, partial block needs its order."""
        full, rest = divmod(self.n, BLOCK)
        shapes = np.full(len(SHAPE_NAMES), full * len(TEXTURE_NAMES))
        textures = np.full(len(TEXTURE_NAMES), full * len(SHAPE_NAMES))
        pairs = _block_order(self.seed, self.stream, full)[:rest]
        shapes += np.bincount(pairs // len(TEXTURE_NAMES), minlength=len(SHAPE_NAMES))
        textures += np.bincount(pairs % len(TEXTURE_NAMES), minlength=len(TEXTURE_NAMES))
        return {"shape": shapes.tolist(), "texture": textures.tolist()}

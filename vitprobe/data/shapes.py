"""Filled shapes as inside-tests on local coordinates.

Each function takes arrays x, y in units of the object radius (origin at the object centre,
y up) and returns a boolean array: True inside. Every shape lies within the unit disc but
the heart, whose lobes reach 1.011, so an object of radius r <= 0.45 (of the image side)
centred at least r + 0.02 from every border, as scenes place them, is wholly in the image.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

ShapeFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def star_polygon(x: np.ndarray, y: np.ndarray, points: int, inner: float) -> np.ndarray:
    """Inside a star with ``points`` tips at radius 1 and notches at radius ``inner``.

    The angle is folded into the half-sector [0, pi/points] between a tip (1, 0) and a notch
    (inner, pi/points); the edge between them is the line n . p = d, and a point at polar
    (rho, phi) is inside when rho * cos(phi - alpha) <= d, alpha = angle of n. With
    ``inner = cos(pi/points)`` the notch lies on the edge and the star is a regular polygon.
    """
    sector = 2 * math.pi / points
    phi = np.mod(np.arctan2(y, x), sector)
    phi = np.minimum(phi, sector - phi)
    edge_x, edge_y = inner * math.cos(sector / 2) - 1.0, inner * math.sin(sector / 2)
    length = math.hypot(edge_x, edge_y)
    normal_x, normal_y = -edge_y / length, edge_x / length
    if normal_x < 0:  # make it point away from the origin
        normal_x, normal_y = -normal_x, -normal_y
    alpha = math.atan2(normal_y, normal_x)
    return np.hypot(x, y) * np.cos(phi - alpha) <= normal_x  # d = normal . (1, 0)


def circle(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x^2 + y^2 <= 0.95^2."""
    return x * x + y * y <= 0.95**2


def square(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A regular 4-gon (``star_polygon`` with inner radius cos(pi/4): straight sides)."""
    return star_polygon(x, y, 4, math.cos(math.pi / 4))


def triangle(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A regular 3-gon (``star_polygon`` with inner radius cos(pi/3): straight sides)."""
    return star_polygon(x, y, 3, math.cos(math.pi / 3))


def hexagon(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A regular 6-gon (``star_polygon`` with inner radius cos(pi/6): straight sides)."""
    return star_polygon(x, y, 6, math.cos(math.pi / 6))


def star(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A 5-pointed star (``star_polygon`` with inner radius 0.42)."""
    return star_polygon(x, y, 5, 0.42)


def cross(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Two bars |x| <= 0.3, |y| <= 0.93 and |y| <= 0.3, |x| <= 0.93."""
    ax, ay = np.abs(x), np.abs(y)
    return ((ax <= 0.3) & (ay <= 0.93)) | ((ay <= 0.3) & (ax <= 0.93))


def ring(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """0.5^2 <= x^2 + y^2 <= 0.95^2."""
    r2 = x * x + y * y
    return (r2 <= 0.95**2) & (r2 >= 0.5**2)


def heart(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(u^2 + v^2 - 1)^3 - u^2 v^3 <= 0 with u = 1.3 x, v = 1.3 y + 0.15 (within 1.011 of the centre)."""
    u2 = (1.3 * x) ** 2
    v = 1.3 * y + 0.15
    w = u2 + v * v - 1
    return w * w * w <= u2 * v * v * v


SHAPES: dict[str, ShapeFn] = {
    "circle": circle,
    "square": square,
    "triangle": triangle,
    "star": star,
    "cross": cross,
    "ring": ring,
    "hexagon": hexagon,
    "heart": heart,
}

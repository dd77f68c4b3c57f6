"""Token cosine similarity and singular value spectra (Park et al. 2023, Figs. 6-7)."""

from __future__ import annotations

import math

from matplotlib.figure import Figure

from vitprobe.metrics.spectrum import SPECTRUM_EPS
from vitprobe.plots.panels import depth_curve_panel, depth_curves, has_metric, rows_of
from vitprobe.plots.style import PANEL, Items, finish, new_figure

METRICS = ("token_cosine", "log_singular_value_image", "log_singular_value_token")
SPECTRA = {"log_singular_value_image": "image level", "log_singular_value_token": "token level"}
# Singular values numerically 0 sit at log(SPECTRUM_EPS); drawing them would squash the curves.
_FLOOR = math.log(SPECTRUM_EPS) + 1e-6


def draw(items: Items) -> Figure:
    """Left: mean pairwise cosine of an image's patch tokens against depth (all runs); right:
    per run (one row each), log singular values against rank, one curve per layer coloured
    by depth, for the image-level and the token-level covariance (ranks past the covariance's
    rank, NaN in the tables, and values at the floor log(1e-12) are left out)."""
    spectra = [m for m in SPECTRA if has_metric(items, m)]
    rows_n = len(items) if spectra else 1
    fig = new_figure(width=PANEL[0] * (1 + len(spectra)), height=PANEL[1] * max(1, 0.75 * rows_n))
    grid = fig.add_gridspec(rows_n, 1 + len(spectra))
    depth_curve_panel(fig.add_subplot(grid[:, 0]), items, "token_cosine", "token cosine similarity")
    for row, (label, result) in enumerate(items if spectra else []):
        for col, metric in enumerate(spectra, start=1):
            ax = fig.add_subplot(grid[row, col])
            rows = rows_of(result, metric).dropna(subset=["layer", "rank"])
            if not depth_curves(fig, ax, rows[rows["value"] > _FLOOR], "rank"):
                continue
            ax.set_xlabel("singular value rank")
            ax.set_ylabel("log singular value")
            ax.set_title(f"{label}: {SPECTRA[metric]}")
    return finish(fig, "Token similarity and singular value spectra", items)

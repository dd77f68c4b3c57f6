"""Attention distance per head against depth (Park et al. 2023, Fig. 3; Dosovitskiy et al. 2021)."""

from __future__ import annotations

from matplotlib.figure import Figure

from vitprobe.plots.panels import per_head_panel
from vitprobe.plots.style import Items, finish, new_figure

METRICS = ("attention_distance_px",)


def draw(items: Items) -> Figure:
    """Every head a dot, the mean over heads a line, one colour per run."""
    fig = new_figure()
    ax = fig.add_subplot()
    per_head_panel(ax, items, "attention_distance_px", "attention distance (px)")
    return finish(fig, "Attention distance", items)

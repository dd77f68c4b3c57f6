"""Attention distance per head against depth (Park et al. 2023, Fig. 3; Dosovitskiy et al. 2021)."""

from __future__ import annotations

from matplotlib.figure import Figure

from vitprobe.plots.panels import from_zero, per_head_panel
from vitprobe.plots.style import Items, finish, new_figure

METRICS = ("attention_distance_px",)


def draw(items: Items) -> Figure:
    """Every head a dot, the mean over heads a line, one colour per run; a dotted line at the
    distance of attention spread evenly over the patches (per patch grid the runs have); the
    axis from 0 to above both."""
    fig = new_figure()
    ax = fig.add_subplot()
    per_head_panel(ax, items, "attention_distance_px", "attention distance (px)")
    even = sorted({float(r.protocol["even_attention_px"]) for _, r in items if "even_attention_px" in r.protocol})
    for value in even:
        ax.axhline(value, color="0.45", ls=":", lw=1.0, zorder=0, label=f"even attention ({value:.3g} px)")
    from_zero(ax)
    return finish(fig, "Attention distance", items)

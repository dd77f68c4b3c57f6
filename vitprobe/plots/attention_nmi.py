"""Attention NMI per head and head diversity against depth (Park et al. 2023, Fig. 4)."""

from __future__ import annotations

import math

from matplotlib.figure import Figure

from vitprobe.plots.panels import depth_curve_panel, from_zero, has_metric, per_head_panel, rows_of
from vitprobe.plots.style import Items, finish, new_figure

METRICS = ("nmi", "head_diversity_jsd")


def draw(items: Items) -> Figure:
    """Left: NMI between query and key per head; right: mean pairwise JS divergence of heads."""
    panels = [m for m in METRICS if has_metric(items, m)]
    fig = new_figure(ncols=len(panels))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, metric in zip(axes, panels):
        if metric == "nmi":
            per_head_panel(ax, items, metric, "NMI(query; key)")
            from_zero(ax)
            ax.set_title("query dependence per head (0 = collapsed)")
        else:
            depth_curve_panel(ax, items, metric, "head diversity (JSD, nats)")
            ax.set_title("pairwise JSD of heads (max log 2)")
            if any(rows_of(result, metric)["value"].notna().any() for _, result in items):
                ax.axhline(math.log(2), color="0.5", lw=0.8, ls="--")
            else:  # no values: no axis scale to read either
                ax.set_xticks([])
                ax.set_yticks([])
                ax.text(0.5, 0.5, "undefined: one head,\nno pair of heads to compare", transform=ax.transAxes,
                        ha="center", va="center", color="0.35")
    return finish(fig, "Attention NMI and head diversity", items)

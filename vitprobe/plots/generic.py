"""Fallback figure for an analysis without a dedicated plot: each metric against depth."""

from __future__ import annotations

from matplotlib.figure import Figure

from vitprobe.plots.panels import depth_curve_panel
from vitprobe.plots.style import Items, finish, new_figure


def draw(items: Items, title: str = "") -> Figure:
    """One panel per metric: the mean over the other columns against depth, a line per run;
    metrics without a layer column are shown as one point per run at depth 0."""
    metrics = list(dict.fromkeys(m for _, r in items for m in r.table["metric"]))
    fig = new_figure(ncols=len(metrics))
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    layered = [(label, r if "layer" in r.table else _at_depth_zero(r)) for label, r in items]
    for ax, metric in zip(axes, metrics):
        depth_curve_panel(ax, layered, metric, metric)
    return finish(fig, title, items)


def _at_depth_zero(result):
    from vitprobe.results import Result

    return Result(result.name, result.table.assign(layer=0), result.protocol)

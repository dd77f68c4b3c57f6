"""Fallback figure for an analysis without a dedicated plot: each metric against depth."""

from __future__ import annotations

from matplotlib.figure import Figure

from vitprobe.plots.panels import depth_curve_panel, rows_of
from vitprobe.plots.style import Items, finish, new_figure

NOT_AXES = ("metric", "layer", "value", "std", "n")


def draw(items: Items, title: str = "") -> Figure:
    """One panel per metric: the mean over the other columns against depth, a line per run,
    its y label naming the columns averaged over; metrics without a layer column are shown as
    one point per run at depth 0."""
    metrics = list(dict.fromkeys(m for _, r in items for m in r.table["metric"]))
    fig = new_figure(ncols=len(metrics))
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    layered = [(label, r if "layer" in r.table else _at_depth_zero(r)) for label, r in items]
    for ax, metric in zip(axes, metrics):
        averaged = _averaged_axes(layered, metric)
        depth_curve_panel(ax, layered, metric, f"{metric}\n(mean over {', '.join(averaged)})" if averaged else metric)
    return finish(fig, title, items)


def _averaged_axes(items: Items, metric: str) -> list[str]:
    """The table columns besides layer along which ``metric`` takes more than one value in
    some run (heads, frequencies, ...): what each point of its depth curve averages over."""
    axes: dict[str, None] = {}
    for _, result in items:
        rows = rows_of(result, metric)
        for column in rows.columns:
            if column not in NOT_AXES and rows[column].nunique() > 1:
                axes[column] = None
    return list(axes)


def _at_depth_zero(result):
    from vitprobe.results import Result

    return Result(result.name, result.table.assign(layer=0), result.protocol)

"""Fallback figure for an analysis without a dedicated plot: each metric against depth (per run where it has no layer)."""

from __future__ import annotations

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from vitprobe.plots.panels import depth_curve_panel, rows_of
from vitprobe.plots.style import Items, finish, new_figure, run_colors

NOT_AXES = ("metric", "layer", "value", "std", "n")


def draw(items: Items, title: str = "") -> Figure:
    """One panel per metric: the mean over the other columns against depth, a line per run,
    its y label naming the columns averaged over; a metric that no run gives per layer is one
    point per run (with its std, where the table has one) on an axis of the runs, not a depth."""
    metrics = list(dict.fromkeys(m for _, r in items for m in r.table["metric"]))
    fig = new_figure(ncols=len(metrics))
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics):
        averaged = _averaged_axes(items, metric)
        ylabel = f"{metric}\n(mean over {', '.join(averaged)})" if averaged else metric
        if any("layer" in r.table and rows_of(r, metric)["layer"].notna().any() for _, r in items):
            depth_curve_panel(ax, items, metric, ylabel)
        else:
            _per_run_panel(ax, items, metric, ylabel)
    return finish(fig, title, items)


def _per_run_panel(ax: Axes, items: Items, metric: str, ylabel: str) -> None:
    """``metric`` (mean over its rows) as one point per run, with the rows' mean std as its bar."""
    for x, ((label, result), color) in enumerate(zip(items, run_colors(len(items)))):
        rows = rows_of(result, metric)
        if rows.empty:
            continue
        std = rows["std"].mean() if "std" in rows and rows["std"].notna().any() else None
        ax.errorbar([x], [rows["value"].mean()], yerr=None if std is None else [std], fmt="o", ms=4,
                    capsize=3, color=color, label=label)
    ax.set_xticks(range(len(items)), [label for label, _ in items])
    ax.set_xlim(-0.5, len(items) - 0.5)
    ax.set_ylabel(ylabel)


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

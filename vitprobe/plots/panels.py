"""Panels shared by several analyses: per-head dots against depth, a curve against depth."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from vitprobe.plots.style import Items, depth_axis, run_colors

if TYPE_CHECKING:
    from vitprobe.results import Result


def rows_of(result: Result, metric: str) -> pd.DataFrame:
    """The rows of ``metric`` in a result's table (empty if absent)."""
    table = result.table
    return table[table["metric"] == metric]


def has_metric(items: Items, metric: str) -> bool:
    """Whether any run's table holds ``metric``."""
    return any(len(rows_of(result, metric)) for _, result in items)


def per_head_panel(ax: Axes, items: Items, metric: str, ylabel: str) -> None:
    """Every head a dot and the mean over heads a line, against depth; one colour per run.

    Runs are shifted sideways by a small offset so that their dots do not hide each other.
    The lines carry the run labels for the figure's legend (``finish`` places it below).
    """
    colors = run_colors(len(items))
    offsets = np.linspace(-0.15, 0.15, len(items)) if len(items) > 1 else [0.0]
    for (label, result), color, dx in zip(items, colors, offsets):
        rows = rows_of(result, metric).dropna(subset=["layer"])
        if rows.empty:
            continue
        layer = rows["layer"].to_numpy(dtype=float)
        ax.scatter(layer + dx, rows["value"], s=7, color=color, alpha=0.45, linewidths=0)
        mean = rows.groupby("layer", sort=True)["value"].mean()
        ax.plot(mean.index.to_numpy(dtype=float), mean.to_numpy(), "-o", ms=3, color=color, label=label)
    depth_axis(ax)
    ax.set_ylabel(ylabel)


def from_zero(ax: Axes) -> None:
    """Start the value axis at 0 for a non-negative metric (attention distance, NMI): an axis
    zoomed onto the data would make a near-uniform model's small spread look like structure.
    The top is 5% of the axis above the highest point or line (autoscaling's margin was 5% of
    the data's own spread, which leaves a near-uniform model's dots on the frame). Call it
    after every line is drawn."""
    top = ax.dataLim.y1
    ax.set_ylim(0.0, 1.05 * top if np.isfinite(top) and top > 0 else None)


def depth_curve_panel(ax: Axes, items: Items, metric: str, ylabel: str,
                      select: Callable[[pd.DataFrame], pd.DataFrame] | None = None) -> None:
    """One line per run: ``metric`` (mean over the remaining columns) against depth.

    ``select``, if given, filters each run's rows first (e.g. the highest frequency). A run
    whose table has no layer column has no curve here.
    """
    colors = run_colors(len(items))
    for (label, result), color in zip(items, colors):
        if "layer" not in result.table:
            continue
        rows = rows_of(result, metric).dropna(subset=["layer"])
        if select is not None:
            rows = select(rows)
        if rows.empty:
            continue
        curve = rows.groupby("layer", sort=True)["value"].mean()
        ax.plot(curve.index.to_numpy(dtype=float), curve.to_numpy(), "-o", ms=3, color=color, label=label)
    depth_axis(ax)
    ax.set_ylabel(ylabel)


def depth_curves(fig: Figure, ax: Axes, rows: pd.DataFrame, x: str) -> bool:
    """One curve of ``value`` against column ``x`` per layer of ``rows``, coloured by depth
    (viridis, shallow dark to deep bright), with a colour bar labelled "depth" (ticks at whole
    blocks); False, and nothing drawn, when ``rows`` is empty."""
    import matplotlib as mpl
    from matplotlib.ticker import MaxNLocator

    if rows.empty:
        return False
    layers = rows["layer"].to_numpy(dtype=float)
    norm = mpl.colors.Normalize(vmin=layers.min(), vmax=max(layers.max(), layers.min() + 1))
    mappable = mpl.cm.ScalarMappable(norm=norm, cmap="viridis")
    for layer, curve in rows.groupby("layer", sort=True):
        curve = curve.sort_values(x)
        ax.plot(curve[x], curve["value"], color=mappable.to_rgba(float(layer)), lw=1)
    fig.colorbar(mappable, ax=ax, label="depth", ticks=MaxNLocator(integer=True))
    return True

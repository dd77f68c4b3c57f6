"""Relative log amplitude of feature maps (Park et al. 2023, Fig. 5; Park & Kim 2022)."""

from __future__ import annotations

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from vitprobe.plots.panels import depth_curve_panel, depth_curves, rows_of
from vitprobe.plots.style import Items, finish, new_figure

METRICS = ("delta_log_amplitude",)
METRIC = METRICS[0]


def _highest_frequency(rows):
    return rows[rows["frequency"] == rows["frequency"].max()]


def _pi_ticks(value: float, _pos: int) -> str:
    return "0" if abs(value) < 1e-9 else f"{value:.2g}π"


def draw(items: Items) -> Figure:
    """Left: delta log amplitude at the highest frequency against depth (0 = embedding);
    then, per run, the whole delta curve of every layer coloured by depth.

    The frequency axis is in units of pi and ends where the data ends (e.g. 6/7 pi for a
    14 x 14 grid), not at a relabelled 1 pi.
    """
    fig = new_figure(ncols=1 + len(items))
    axes = fig.subplots(1, 1 + len(items), squeeze=False)[0]
    depth_curve_panel(axes[0], items, METRIC, "Δ log amplitude at highest freq.", select=_highest_frequency)
    axes[0].set_xlabel("depth (0 = embedding)")
    for ax, (label, result) in zip(axes[1:], items):
        rows = rows_of(result, METRIC).dropna(subset=["layer", "frequency"])
        if not depth_curves(fig, ax, rows, "frequency"):
            continue
        ax.xaxis.set_major_formatter(FuncFormatter(_pi_ticks))
        ax.set_xlim(0, float(rows["frequency"].max()))
        ax.set_xlabel("frequency")
        ax.set_ylabel("Δ log amplitude")
        ax.set_title(label)
    return finish(fig, "Fourier analysis of feature maps", items)

"""Per-layer linear-probe and k-NN accuracy against depth (Park et al. 2023, Fig. 8)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from vitprobe.metrics.accuracy import accuracy_standard_error
from vitprobe.plots.panels import rows_of
from vitprobe.plots.style import Items, depth_axis, finish, legend_below, new_figure, run_colors

METRICS = ("linear_probe_top1", "knn_top1")
TITLES = {"linear_probe_top1": "Linear probe per layer", "knn_top1": "k-NN per layer"}
# (line style, marker) of each label's curves, here and in the sweep figure
LINE_STYLES = (("-", "o"), ("--", "s"), (":", "^"), ("-.", "v"), ("-", "D"), ("--", "x"))


def draw(items: Items) -> Figure:
    """One line per label per run: colour names the run, line style the label; the band is
    one standard error over the ``n`` held-out images (``accuracy_standard_error``), cut at 0
    and 100%. The
    legend below names each run and each label once (n in the axis label where every curve
    has the same), else each curve."""
    from matplotlib.lines import Line2D

    metric = next((m for m in METRICS if any(len(rows_of(r, m)) for _, r in items)), METRICS[0])
    percent = any(rows_of(r, metric)["value"].max() > 1 for _, r in items)
    scale = 100.0 if percent else 1.0
    fig = new_figure()
    ax = fig.add_subplot()
    curves, styles, held = [], {}, set()
    for (run_label, result), color in zip(items, run_colors(len(items))):
        rows = rows_of(result, metric).dropna(subset=["layer"])
        labels = rows["label"].fillna("") if "label" in rows else rows["metric"].map(lambda _: "")
        for label, curve in rows.groupby(labels, sort=True):
            curve = curve.sort_values("layer")
            layers, values = curve["layer"].to_numpy(dtype=float), curve["value"].to_numpy(dtype=float)
            held_out = int(curve["n"].max()) if "n" in curve and curve["n"].notna().any() else 0
            if held_out:
                se = accuracy_standard_error(values, held_out, scale)
                ax.fill_between(layers, np.clip(values - se, 0.0, scale), np.clip(values + se, 0.0, scale),
                                color=color, alpha=0.15, lw=0)
            style = styles.setdefault(str(label), LINE_STYLES[len(styles) % len(LINE_STYLES)])
            line, = ax.plot(layers, values, linestyle=style[0], marker=style[1], ms=3, color=color)
            curves.append((line, run_label, str(label), held_out))
            held.add(held_out)
    depth_axis(ax)
    ylabel = ("top-1 accuracy (%)" if percent else "top-1 accuracy") + ", band ±1 SE"
    if len(held) == 1 and 0 not in held:
        ax.set_ylabel(f"{ylabel}\n(n={held.pop()} held out)")
        runs = dict.fromkeys(run for _, run, _, _ in curves)
        colors = {run: line.get_color() for line, run, _, _ in curves}
        handles = [Line2D([], [], color=colors[run], lw=1.5) for run in runs]
        names = list(runs)
        if any(styles):  # one entry per label, in grey, by its line style
            handles += [Line2D([], [], color="0.35", linestyle=line, marker=marker, ms=3)
                        for line, marker in styles.values()]
            names += list(styles)
        legend_below(fig, handles, names)
    else:
        ax.set_ylabel(ylabel)
        legend_below(fig, [line for line, *_ in curves],
                     [" · ".join(filter(None, (run, label))) + (f" (n={n} held out)" if n else "")
                      for _, run, label, n in curves])
    return finish(fig, TITLES[metric], items)

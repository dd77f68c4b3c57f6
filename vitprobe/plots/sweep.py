"""A sweep over the hybrid weight lambda: last-layer accuracy against lambda, and the
per-layer curves of every lambda (Park et al. 2023, Sec. 5)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from vitprobe.metrics.accuracy import accuracy_standard_error
from vitprobe.plots.accuracy import LINE_STYLES
from vitprobe.plots.panels import rows_of
from vitprobe.plots.style import RC, depth_axis, finish, legend_below, new_figure

if TYPE_CHECKING:
    from vitprobe.results import Result


def draw_sweep(values: Sequence[float], results: Sequence["Result"], name: str = "lambda") -> Figure:
    """Left: accuracy at the deepest layer against the swept value, one line per label, with
    bars of one standard error over its ``n`` held-out images (``accuracy_standard_error``,
    cut at 0 and 100%). Right: accuracy against depth, one line per swept value and label
    (colour = value, line style = label, as on the left). One legend below names each label
    and each value once."""
    from matplotlib import colormaps
    from matplotlib.lines import Line2D

    metric = str(results[0].table["metric"].iloc[0])
    with matplotlib.rc_context(RC):
        fig = new_figure(ncols=2)
        left, right = fig.subplots(1, 2)
        finals: dict[str, list[tuple[float, int]]] = {}  # label -> (accuracy, held out) per value
        styles: dict[str, tuple[str, str]] = {}
        cmap = colormaps["viridis"]
        colours = [cmap(index / max(len(values) - 1, 1)) for index in range(len(values))]
        for value, result, colour in zip(values, results, colours):
            rows = rows_of(result, metric).dropna(subset=["layer"])
            last = rows[rows["layer"] == rows["layer"].max()]
            for label, group in last.groupby(last["label"].fillna(""), sort=True):
                held_out = int(group["n"].max()) if "n" in group and group["n"].notna().any() else 0
                finals.setdefault(str(label), []).append((float(group["value"].mean()), held_out))
            for label, curve in rows.groupby(rows["label"].fillna(""), sort=True):
                curve = curve.sort_values("layer")
                line, marker = styles.setdefault(str(label), LINE_STYLES[len(styles) % len(LINE_STYLES)])
                right.plot(curve["layer"].to_numpy(dtype=float), curve["value"], linestyle=line,
                           marker=marker, ms=3, color=colour)
        for label, finals_of in finals.items():
            line, marker = styles.setdefault(label, LINE_STYLES[len(styles) % len(LINE_STYLES)])
            accs = np.array([acc for acc, _ in finals_of])
            se = np.array([accuracy_standard_error(acc, n, 100.0) if n else 0.0 for acc, n in finals_of])
            bars = np.stack([accs - np.clip(accs - se, 0.0, 100.0), np.clip(accs + se, 0.0, 100.0) - accs])
            left.errorbar(list(values), accs, yerr=bars, linestyle=line, marker=marker, ms=4, color="0.25",
                          capsize=2, elinewidth=0.8)
        left.set_xlabel(f"{name} (0 = pure MIM, 1 = pure CL)")
        left.set_ylabel("top-1 accuracy at the last layer (%), bars ±1 SE")
        depth_axis(right)
        right.set_ylabel("top-1 accuracy (%)")
        handles = [Line2D([], [], linestyle=line, marker=marker, ms=3, color="0.25")
                   for line, marker in styles.values()]
        handles += [Line2D([], [], color=colour, lw=2) for colour in colours]
        legend_below(fig, handles, [*(label or "accuracy" for label in styles),
                                    *(f"{name} {value:g}" for value in values)])
        title = {"linear_probe_top1": "Linear probe", "knn_top1": "k-NN"}.get(metric, metric)
        return finish(fig, f"{title} against the CL weight {name}",
                      [(f"{value:g}", r) for value, r in zip(values, results)])

"""A sweep over the hybrid weight lambda: last-layer accuracy against lambda, and the
per-layer curves of every lambda (Park et al. 2023, Sec. 5)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import matplotlib
from matplotlib.figure import Figure

from vitprobe.plots.panels import rows_of
from vitprobe.plots.style import RC, depth_axis, finish, new_figure

if TYPE_CHECKING:
    from vitprobe.results import Result


def draw_sweep(values: Sequence[float], results: Sequence["Result"], name: str = "lambda") -> Figure:
    """Left: accuracy at the deepest layer against the swept value, one line per label.
    Right: accuracy against depth, one line per swept value (colour = value)."""
    from matplotlib import colormaps

    metric = str(results[0].table["metric"].iloc[0])
    with matplotlib.rc_context(RC):
        fig = new_figure(ncols=2)
        left, right = fig.subplots(1, 2)
        finals: dict[str, list[float]] = {}
        cmap = colormaps["viridis"]
        for index, (value, result) in enumerate(zip(values, results)):
            rows = rows_of(result, metric).dropna(subset=["layer"])
            last = rows[rows["layer"] == rows["layer"].max()]
            for label, group in last.groupby(last["label"].fillna(""), sort=True):
                finals.setdefault(str(label), []).append(float(group["value"].mean()))
            colour = cmap(index / max(len(values) - 1, 1))
            for label, curve in rows.groupby(rows["label"].fillna(""), sort=True):
                curve = curve.sort_values("layer")
                style = "-o" if label == sorted(rows["label"].fillna("").unique())[0] else "--s"
                right.plot(curve["layer"].to_numpy(dtype=float), curve["value"], style, ms=3,
                           color=colour, label=f"{name} {value:g} · {label}")
        for label, accs in finals.items():
            left.plot(list(values), accs, "-o", ms=4, label=label)
        left.set_xlabel(f"{name} (0 = pure MIM, 1 = pure CL)")
        left.set_ylabel("top-1 accuracy at the last layer (%)")
        left.legend(frameon=False)
        depth_axis(right)
        right.set_ylabel("top-1 accuracy (%)")
        right.legend(frameon=False, fontsize=5, ncol=2)
        title = {"linear_probe_top1": "Linear probe", "knn_top1": "k-NN"}.get(metric, metric)
        return finish(fig, f"{title} against the CL weight {name}",
                      [(f"{value:g}", r) for value, r in zip(values, results)])

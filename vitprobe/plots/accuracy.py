"""Per-layer linear-probe and k-NN accuracy against depth (Park et al. 2023, Fig. 8)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from vitprobe.plots.panels import rows_of
from vitprobe.plots.style import Items, depth_axis, finish, new_figure, run_colors

METRICS = ("linear_probe_top1", "knn_top1")
TITLES = {"linear_probe_top1": "Linear probe per layer", "knn_top1": "k-NN per layer"}
_STYLES = ("-o", "--s", ":^", "-.v", "-D", "--x")


def draw(items: Items) -> Figure:
    """One line per label per run: colour names the run, line style the label; the band is
    one binomial standard error, ``sqrt(p (1 - p) / n)`` over the ``n`` held-out images."""
    metric = next((m for m in METRICS if any(len(rows_of(r, m)) for _, r in items)), METRICS[0])
    percent = any(rows_of(r, metric)["value"].max() > 1 for _, r in items)
    scale = 100.0 if percent else 1.0
    fig = new_figure()
    ax = fig.add_subplot()
    for (run_label, result), color in zip(items, run_colors(len(items))):
        rows = rows_of(result, metric).dropna(subset=["layer"])
        labels = rows["label"].fillna("") if "label" in rows else rows["metric"].map(lambda _: "")
        for index, (label, curve) in enumerate(rows.groupby(labels, sort=True)):
            curve = curve.sort_values("layer")
            layers, values = curve["layer"].to_numpy(dtype=float), curve["value"].to_numpy(dtype=float)
            name = f"{run_label} · {label}" if label else run_label
            held_out = int(curve["n"].max()) if "n" in curve and curve["n"].notna().any() else 0
            if held_out:
                name += f" (n={held_out} held out)"
                p = np.clip(values / scale, 0.0, 1.0)
                se = scale * np.sqrt(p * (1 - p) / held_out)
                ax.fill_between(layers, values - se, values + se, color=color, alpha=0.15, lw=0)
            ax.plot(layers, values, _STYLES[index % len(_STYLES)], ms=3, color=color, label=name)
    depth_axis(ax)
    ax.set_ylabel(("top-1 accuracy (%)" if percent else "top-1 accuracy") + ", band ±1 SE")
    ax.legend(frameon=False)
    return finish(fig, TITLES[metric], items)

"""DINO attention masks: Jaccard with the ground truth per head, and the masks themselves
(Caron et al. 2021, Fig. 3 and Table 6)."""

from __future__ import annotations

import textwrap

import numpy as np
from matplotlib.figure import Figure

from vitprobe.plots.panels import rows_of
from vitprobe.plots.style import PANEL, Items, finish, new_figure, run_colors

METRICS = ("jaccard", "jaccard_best_head", "jaccard_union", "mask_area")
AREA_LABEL = "mask area (share of patches kept)"
MAX_IMAGES = 3  # rows of the image grid per run


def _upsample(mask: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour upsampling of an (h, w) map to (size, size)."""
    h, w = mask.shape
    rows = np.arange(size) * h // size
    cols = np.arange(size) * w // size
    return mask[rows][:, cols]


def _per_head(result, metric: str) -> dict[str, float]:
    """One run's ``metric`` by head name: ``h0``, ``h1``, ..."""
    heads = rows_of(result, metric).dropna(subset=["head"])
    return {f"h{int(h)}": float(v) for h, v in zip(heads["head"], heads["value"])}


def _bar_values(result) -> dict[str, float]:
    """One run's bars by name: ``h0``, ``h1``, ... per head, then ``best`` and ``union``."""
    values = _per_head(result, "jaccard")
    for metric, name in (("jaccard_best_head", "best"), ("jaccard_union", "union")):
        rows = rows_of(result, metric)
        if len(rows):
            values[name] = float(rows["value"].iloc[0])
    return values


def _bars(ax, items: Items) -> None:
    """Grouped bars: Jaccard of each head, then the best head per image and the union; each
    bar sits over its own name, so runs with different head counts line up. A black tick on a
    head's bar marks its mask area: an IoU near a head's area, with every area near the kept
    attention mass, is what even attention scores, not a found object."""
    runs = [(label, _bar_values(result), _per_head(result, "mask_area")) for label, result in items]
    heads = sorted({n for _, v, _ in runs for n in v if n.startswith("h")}, key=lambda n: int(n[1:]))
    names = heads + [n for n in ("best", "union") if any(n in v for _, v, _ in runs)]
    width = 0.8 / max(len(runs), 1)
    area_label = AREA_LABEL
    for index, ((label, values, areas), color) in enumerate(zip(runs, run_colors(len(runs)))):
        shift = (index - (len(runs) - 1) / 2) * width
        at = [i for i, n in enumerate(names) if n in values]
        ax.bar(np.array(at) + shift, [values[names[i]] for i in at], width, color=color, label=label)
        marked = np.array([i for i, n in enumerate(names) if n in areas]) + shift
        if len(marked):
            ax.hlines([areas[n] for n in names if n in areas], marked - 0.35 * width, marked + 0.35 * width,
                      color="k", linewidths=1.2, zorder=3, label=area_label)
            area_label = "_nolegend_"  # one legend entry for every run's ticks
    ax.set_xticks(np.arange(len(names)), names)
    ax.set_ylabel("Jaccard with ground truth")


def _image_row(fig, grid, row: int, label: str, artifacts: dict, index: int) -> None:
    """The image with its ground-truth outline, then each head's attention and kept mask."""
    image = artifacts["images"][index]
    size = image.shape[0]
    ax = fig.add_subplot(grid[row, 0])
    ax.imshow(image)
    if "masks" in artifacts:
        truth = artifacts["masks"][index]
        ax.contour((truth > 0) & (truth != 255), levels=[0.5], colors="w", linewidths=0.8)
    ax.set_ylabel("\n".join(textwrap.wrap(label, 14)) or label, fontsize=6)  # a long label stays in its row
    heads = artifacts.get("head_masks")
    attn = artifacts.get("head_attn")
    count = heads.shape[1] if heads is not None else (attn.shape[1] if attn is not None else 0)
    for head in range(count):
        ax = fig.add_subplot(grid[row, 1 + head])
        ax.imshow(image)
        if attn is not None:
            ax.imshow(_upsample(attn[index, head], size), cmap="inferno", alpha=0.6, interpolation="nearest")
        if heads is not None:
            ax.contour(_upsample(heads[index, head].astype(float), size), levels=[0.5], colors="c", linewidths=0.8)
        if index == 0:  # each run's first image names its heads
            ax.set_title(f"head {head}", fontsize=7)
    for ax in fig.axes[-(count + 1):]:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)


def draw(items: Items) -> Figure:
    """Top: Jaccard per head per run; below (where artifacts were kept): a few images with
    each head's CLS attention and the smallest patch set holding the kept attention mass."""
    rows = [(label, r.artifacts, i) for label, r in items if "images" in r.artifacts
            for i in range(min(MAX_IMAGES, len(r.artifacts["images"])))]
    heads = max((a["head_masks"].shape[1] for _, a, _ in rows if "head_masks" in a), default=0)
    cols = max(heads + 1, 2)
    fig = new_figure(width=max(PANEL[0], 0.9 * cols), height=PANEL[1] + 0.9 * len(rows))
    grid = fig.add_gridspec(1 + len(rows), cols, height_ratios=[PANEL[1] / 0.9] + [1] * len(rows))
    _bars(fig.add_subplot(grid[0, :]), items)
    for row, (label, artifacts, index) in enumerate(rows, start=1):
        _image_row(fig, grid, row, label, artifacts, index)
    return finish(fig, "Last-block CLS attention masks vs ground truth", items)

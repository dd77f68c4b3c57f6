"""DINO attention masks: Jaccard with the ground truth per head, and the masks themselves
(Caron et al. 2021, Fig. 3 and Table 6)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from vitprobe.plots.panels import rows_of
from vitprobe.plots.style import PANEL, Items, finish, new_figure, run_colors

METRICS = ("jaccard", "jaccard_best_head", "jaccard_union")
MAX_IMAGES = 3  # rows of the image grid per run


def _upsample(mask: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour upsampling of an (h, w) map to (size, size)."""
    h, w = mask.shape
    rows = np.arange(size) * h // size
    cols = np.arange(size) * w // size
    return mask[rows][:, cols]


def _bars(ax, items: Items) -> None:
    """Grouped bars: Jaccard of each head, then the best head per image and the union."""
    width = 0.8 / max(len(items), 1)
    ticks: list[str] = []
    for index, ((label, result), color) in enumerate(zip(items, run_colors(len(items)))):
        heads = rows_of(result, "jaccard").dropna(subset=["head"]).sort_values("head")
        names = [f"h{int(h)}" for h in heads["head"]]
        values = list(heads["value"])
        for metric, name in (("jaccard_best_head", "best"), ("jaccard_union", "union")):
            rows = rows_of(result, metric)
            if len(rows):
                names.append(name)
                values.append(float(rows["value"].iloc[0]))
        ticks = names if len(names) > len(ticks) else ticks
        ax.bar(np.arange(len(values)) + (index - (len(items) - 1) / 2) * width, values, width,
               color=color, label=label)
    ax.set_xticks(np.arange(len(ticks)), ticks)
    ax.set_ylabel("Jaccard with ground truth")
    ax.legend(frameon=False)


def _image_row(fig, grid, row: int, label: str, artifacts: dict, index: int) -> None:
    """The image with its ground-truth outline, then each head's attention and kept mask."""
    image = artifacts["images"][index]
    size = image.shape[0]
    ax = fig.add_subplot(grid[row, 0])
    ax.imshow(image)
    if "masks" in artifacts:
        truth = artifacts["masks"][index]
        ax.contour((truth > 0) & (truth != 255), levels=[0.5], colors="w", linewidths=0.8)
    ax.set_ylabel(label, fontsize=6)
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
        if row == 1:
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
    return finish(fig, "DINO attention masks vs ground truth", items)

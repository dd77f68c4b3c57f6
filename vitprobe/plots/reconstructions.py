"""Reconstructions of group-masked images (SiT/GMML): corrupted input, output, original."""

from __future__ import annotations

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from vitprobe.plots.style import RC, new_figure

ROWS = (("corrupted", "corrupted input"), ("reconstruction", "reconstruction"), ("clean", "original"))


def draw_reconstructions(examples: dict[str, np.ndarray], label: str) -> Figure:
    """One column per image; rows: the corrupted input, the model's reconstruction, the original."""
    count = len(examples["clean"])
    with matplotlib.rc_context(RC):
        fig = new_figure(width=1.1 * count + 0.6, height=3.6)
        axes = fig.subplots(len(ROWS), count, squeeze=False)
        for row, (key, name) in enumerate(ROWS):
            for col in range(count):
                ax = axes[row][col]
                ax.imshow(examples[key][col], interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                ax.grid(False)
            axes[row][0].set_ylabel(name, fontsize=7)
        fig.suptitle(f"{label}: reconstructions of group-masked images "
                     f"(L1 on the corrupted pixels is the training loss)", fontsize=8)
        return fig

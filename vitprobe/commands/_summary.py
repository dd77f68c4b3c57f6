"""The summary table that ``analyze`` and ``compare`` print: one row per metric and run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import pandas as pd

if TYPE_CHECKING:
    from vitprobe.results import Run

SE_NOTE = ("se: std / sqrt(n) over the n images; for a top-1 accuracy, Agresti and Coull's plus-four "
           "estimate over the n held-out images")


def print_summary(runs: Sequence["Run"]) -> None:
    """The dataset (once, or per run where runs differ), then one line per metric and run at
    the deepest layer with its units and a numbered note, ``[k]``, whose protocol is printed
    below the table (so rows stay narrow), and how the standard errors were estimated."""
    from vitprobe.plots.style import protocol_caption

    firsts = [next(iter(run.values())).protocol for run in runs]  # values that differ are joined by |
    print(protocol_caption([{k: p[k] for k in ("dataset", "image_size") if k in p} for p in firsts],
                           labels=[run.label for run in runs]) + " · each value at the analysis's deepest layer")
    # The caption above names each run's dataset (one run reads one dataset), so no column repeats it.
    table = pd.concat([r.summary() for r in runs], ignore_index=True).drop(columns="dataset")
    notes = list(dict.fromkeys(p for p in table["protocol"] if p))
    table["protocol"] = [f"[{notes.index(p) + 1}]" if p else "" for p in table["protocol"]]
    with pd.option_context("display.max_colwidth", 60, "display.width", 200, "display.float_format", "{:.4g}".format):
        print(table.to_string(index=False, na_rep="-"))  # NaN: no such number (a mean over heads has no std)
    for number, text in enumerate(notes, start=1):
        print(f"[{number}] {text}")
    print(SE_NOTE)

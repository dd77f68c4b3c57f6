"""Figures of vitprobe results: one module per analysis, each with ``draw(items) -> Figure``
where ``items`` is a list of ``(run label, Result)`` pairs drawn into the same figure."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from vitprobe.plots import accuracy, attention_distance, attention_jaccard, attention_nmi, fourier, generic
from vitprobe.plots import token_similarity
from vitprobe.plots.style import RC, figure_bytes

if TYPE_CHECKING:
    from vitprobe.results import Result

__all__ = ["PLOTTERS", "draw", "figure_bytes"]

_MODULES = (attention_distance, attention_nmi, fourier, token_similarity, accuracy, attention_jaccard)
# Analysis name -> drawing function; results with other names are matched by their metrics.
PLOTTERS: dict[str, Callable[..., Figure]] = {
    "attention_distance": attention_distance.draw,
    "attention_nmi": attention_nmi.draw,
    "fourier": fourier.draw,
    "token_similarity": token_similarity.draw,
    "linear_probe": accuracy.draw,
    "knn": accuracy.draw,
    "attention_jaccard": attention_jaccard.draw,
}


def plotter_for(name: str, metrics: set[str]) -> Callable[..., Figure] | None:
    """The drawing function for an analysis name, else for the first module whose metrics match."""
    if name in PLOTTERS:
        return PLOTTERS[name]
    return next((m.draw for m in _MODULES if metrics & set(m.METRICS)), None)


def draw(name: str, items: Sequence[tuple[str, "Result"]], check: bool = True) -> Figure:
    """Draw the results of one analysis from several runs into one figure (legend: run labels);
    with ``check``, warn when they saw different data or ran with different settings."""
    from vitprobe.comparability import warn_if_incomparable

    items = _checked_items(name, items)
    if check:
        warn_if_incomparable({name: [(label, result.protocol) for label, result in items]})
    metrics = {str(m) for _, r in items for m in r.table["metric"].unique()}
    with matplotlib.rc_context(RC):
        function = plotter_for(name, metrics)
        fig = function(items) if function is not None else generic.draw(items, title=name)
    _note_runs_without_values(fig, items)
    return fig


def _note_runs_without_values(fig: Figure, items: Sequence[tuple[str, "Result"]]) -> None:
    """Say on the figure which runs have no finite value (a probe with no held-out image), so
    that an empty plot is not read as a drawing fault; the warnings say why."""
    empty = [label for label, result in items if not np.isfinite(result.table["value"].to_numpy(float)).any()]
    if empty and fig.axes:
        fig.axes[0].text(0.5, 0.5, f"no finite value for {', '.join(empty)}\n(the analysis's warnings say why)",
                         transform=fig.axes[0].transAxes, ha="center", va="center", fontsize=8, color="0.35")


def _checked_items(name: str, items: Sequence[tuple[str, "Result"]]) -> list[tuple[str, "Result"]]:
    """``items`` as a list of (label, Result of analysis ``name``) pairs, else a one-line ConfigError."""
    from vitprobe.errors import ConfigError
    from vitprobe.results import Result

    example = f"e.g. draw({name!r}, [('mae', run[{name!r}])])"
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
        raise ConfigError(f"draw takes a list of (run label, Result) pairs, got {type(items).__name__}; {example}")
    items = list(items)
    if not items:
        raise ConfigError(f"draw: no results given; {example}")
    for item in items:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str) and isinstance(item[1], Result)):
            raise ConfigError(f"draw takes (run label, Result) pairs, got {type(item).__name__}; {example}")
        if item[1].name != name:
            raise ConfigError(f"draw({name!r}, ...): run {item[0]!r} holds the {item[1].name} result; "
                              f"draw it as draw({item[1].name!r}, ...)")
    labels = [label for label, _ in items]
    twice = next((label for i, label in enumerate(labels) if label in labels[:i]), None)
    if twice is not None:
        raise ConfigError(f"draw({name!r}, ...): label {twice!r} is given twice, so the legend could not tell "
                          "those runs apart; give each run its own label")
    return items

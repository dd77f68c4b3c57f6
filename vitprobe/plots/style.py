"""Shared look of vitprobe figures: small figures made without pyplot, one colour per run, protocol captions."""

from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import matplotlib
from matplotlib.figure import Figure  # drawn without pyplot: no backend is chosen or changed

from vitprobe.comparability import join_by_run

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from vitprobe.results import Result

Items = Sequence[tuple[str, "Result"]]

DPI = 110
PANEL = (3.6, 2.8)  # inches per panel
RC = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    # Ticks show the values themselves: an offset (+1.654e1) makes noise in the 4th decimal
    # look like structure.
    "axes.formatter.useoffset": False,
    "svg.hashsalt": "vitprobe",
}
# Protocol keys shown in figure captions, in this order; the whole protocol is in <name>.json
# and in the report page.
CAPTION_KEYS = ("dataset", "image_size", "heads_guessed", "pooling", "final_norm", "layer", "layer_0", "keep_mass",
                "images_scored", "threshold", "k", "T", "heldout_fraction", "held_out", "unconverged_fits")
# Keys shown only where some run's value is not 0 or false (a warning, not a setting).
CAPTION_KEYS_UNLESS_ZERO = ("unconverged_fits", "even_masks")


def run_colors(n: int) -> list[tuple[float, float, float]]:
    """A colour-blind-safe colour per run."""
    import seaborn as sns

    return list(sns.color_palette("colorblind", max(n, 1)))[:n]


def new_figure(ncols: int = 1, *, width: float | None = None, height: float | None = None) -> Figure:
    """A figure sized for a row of ``ncols`` panels (draw inside ``matplotlib.rc_context(RC)``)."""
    return Figure(figsize=(width or PANEL[0] * ncols, height or PANEL[1]), dpi=DPI, layout="constrained")


def value_text(value: Any) -> str | None:
    """A protocol value as a caption shows it (a dataset as ``spec split s (n=N, k skipped)``), or
    None for a value too long to show."""
    if isinstance(value, dict):
        spec = value.get("spec") or value.get("name")
        if spec is None:
            return None
        split = value.get("split")
        if split and not str(spec).endswith(f":{split}"):  # a default split the spec did not name
            spec = f"{spec} split {split}"
        size = value.get("n") or value.get("size") or value.get("num_images")
        sampled = value.get("sampled")
        if isinstance(sampled, dict):  # some of the dataset's images, chosen by a Subset or sampler
            size = f"{size} of {sampled.get('of')} by {sampled.get('by')}"
        skipped = f", {value['skipped']} skipped" if value.get("skipped") else ""
        return f"{spec} (n={size}{skipped})" if size is not None else str(spec)
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value) if len(value) <= 4 else None
    if isinstance(value, bool):  # runs that differ: "final norm yes (a) | no (b)"
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (str, int)):
        return str(value)
    return None


def protocol_caption(protocols: Sequence[dict[str, Any]], exclude: Sequence[str] = (),
                     labels: Sequence[str] | None = None) -> str:
    """``key value · key value`` of the protocol entries that define the measurement (the
    keys in CAPTION_KEYS, and any analysis parameter set away from its default); where runs
    differ, their values are joined with ``|``, each naming its runs when ``labels`` are given
    (``k 20 (moco) | 5 (mae)``), as is a value that only some runs have (``spectrum images 67 (mae)``)."""
    return " · ".join(_caption_parts(protocols, exclude, labels))


def _changed_params(protocol: dict[str, Any]) -> list[str]:
    """The analysis parameters (block lists aside) that ``protocol`` records at a value other
    than their default, so that a caption names every setting that moved the numbers."""
    import inspect

    from vitprobe.analyzers import list_analyzers, analyzer_class

    name = protocol.get("analysis")
    if name not in list_analyzers():
        return []
    params = inspect.signature(analyzer_class(name).__init__).parameters.values()
    return [p.name for p in params if p.name not in ("self", "layers") and p.default is not p.empty
            and p.name in protocol and protocol[p.name] != p.default]


def _caption_parts(protocols: Sequence[dict[str, Any]], exclude: Sequence[str] = (),
                   labels: Sequence[str] | None = None) -> list[str]:
    changed = [k for p in protocols for k in _changed_params(p) if k not in CAPTION_KEYS]
    from vitprobe.analyzers import outcome_keys  # what an analysis of one's own found, as the built-ins'

    found = [k for p in protocols for k in outcome_keys(p.get("analysis")) if k not in CAPTION_KEYS]
    keys = [k for k in (*CAPTION_KEYS, *dict.fromkeys([*changed, *found])) if any(k in p for p in protocols) and k not in exclude
            and not (k in CAPTION_KEYS_UNLESS_ZERO and all(not p.get(k) for p in protocols))]
    parts = []
    for key in keys:
        name = key.replace('_', ' ')
        values = [p[key] for p in protocols if key in p]
        if values and all(v is values[0] for v in values) and isinstance(values[0], bool):
            parts.append(name if values[0] else f"no {name}")  # "final norm" / "no final norm"
            continue
        found = [(i, value_text(p[key])) for i, p in enumerate(protocols) if key in p]
        found = [(i, v) for i, v in found if v is not None]
        if found:
            runs = [labels[i] for i, _ in found] if labels is not None else None
            text = join_by_run([v for _, v in found], runs)
            if runs is not None and len(found) < len(protocols) and len({v for _, v in found}) == 1:
                text += f" ({', '.join(runs)})"  # one value, but only some runs have it: name them
            parts.append(f"{name} {text}")
    return parts


def legend_below(fig: Figure, handles: Sequence[Any] | None = None,
                 labels: Sequence[str] | None = None) -> None:
    """One legend for the whole figure, below its panels, so that it never hides data: the
    labelled lines of its first panel that has any, unless ``handles``/``labels`` are given.
    As many columns as the widest label allows; the figure grows by the legend's rows."""
    if handles is None:
        for ax in fig.axes:
            handles, labels = ax.get_legend_handles_labels()
            if handles:
                break
    if not handles or labels is None:
        return
    columns = max(1, min(len(labels), int(fig.get_figwidth() * 17) // (max(map(len, labels)) + 6)))
    rows = -(-len(labels) // columns)
    fig.set_figheight(fig.get_figheight() + 0.05 + 0.15 * rows)
    fig.legend(handles, labels, loc="outside lower center", ncol=columns, frameon=False)


def finish(fig: Figure, title: str, items: Items) -> Figure:
    """Title the figure with the analysis and its protocol, wrapped to the figure width: parts
    share a line while they fit, and a part longer than a line (a long data path, runs that
    differ) is broken over several. A figure without a legend yet gets one below its panels
    (:func:`legend_below`)."""
    if not fig.legends and not any(ax.get_legend() for ax in fig.axes):
        legend_below(fig)
    width_chars = int(fig.get_figwidth() * 15)
    lines = [title]
    for part in _caption_parts([result.protocol for _, result in items], labels=[label for label, _ in items]):
        first, *rest = textwrap.wrap(part, width_chars, break_on_hyphens=False) or [part]
        if len(lines) > 1 and len(lines[-1]) + 3 + len(first) <= width_chars:
            lines[-1] += " · " + first
        else:
            lines.append(first)
        lines.extend(rest)
    fig.suptitle("\n".join(lines), fontsize=8)
    return fig


def figure_bytes(fig: Figure, fmt: str) -> bytes:
    """The figure encoded as PNG or SVG, without a timestamp."""
    buffer = io.BytesIO()
    with matplotlib.rc_context(RC):
        fig.savefig(buffer, format=fmt, dpi=DPI, metadata={"Date": None} if fmt == "svg" else None)
    return buffer.getvalue()


def depth_axis(ax: Axes) -> None:
    """Integer ticks on a depth axis (one layer drawn: that layer's tick alone), labelled
    ``depth (0 = embedding)`` where layer 0 (the patch embedding) is drawn, else ``depth (block)``."""
    from matplotlib.collections import PathCollection
    from matplotlib.ticker import MaxNLocator

    drawn = [float(x) for line in ax.get_lines() for x in line.get_xdata()]
    drawn += [float(point[0]) for points in ax.collections if isinstance(points, PathCollection)
              for point in points.get_offsets()]
    if len(set(drawn)) == 1:  # one layer: its own tick, not fractions of a block around it
        ax.set_xticks(drawn[:1])
        ax.set_xlim(drawn[0] - 0.5, drawn[0] + 0.5)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("depth (0 = embedding)" if drawn and min(drawn) < 0.5 else "depth (block)")

"""Checks of a paper's claims against result tables: does the small-scale run agree?"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import pandas as pd

from vitprobe.metrics.accuracy import accuracy_standard_error


@dataclass(frozen=True)
class Verdict:
    """The outcome of one claim check; ``agrees`` is None when the tables cannot decide it."""

    agrees: bool | None
    detail: str


def select_rows(table: pd.DataFrame, check: Mapping[str, Any]) -> pd.DataFrame:
    """Rows of ``metric`` (and ``label``) at the chosen ``layers``, ``frequency`` and ``rank``.

    layers: "all", "last", "first_half", "last_half" (the halves of the blocks the table has,
    the middle one of an odd count in the deeper half, layer 0 (the patch embedding) in the
    first: an analysis of tokens (layers 0..L) and one of attention (1..L) read the same
    blocks), or a list of layer numbers; frequency: "highest" or a number (units of pi); rank: a
    singular value's rank (1 = the largest). A table with a frequency or rank axis that the
    check does not name is read at the highest frequency and at rank 1, as summaries read it.
    """
    rows = table[table["metric"] == check["metric"]]
    if "label" in check and "label" in rows:
        wanted = check["label"]
        rows = rows[rows["label"].isin(wanted) if isinstance(wanted, list) else rows["label"] == wanted]
    if "frequency" in rows and rows["frequency"].notna().any():
        wanted = check.get("frequency", "highest")
        freq = rows["frequency"].max() if wanted == "highest" else float(wanted)
        rows = rows[(rows["frequency"] - freq).abs() < 1e-9]
    if "rank" in rows and rows["rank"].notna().any():
        rows = rows[rows["rank"] == int(check.get("rank", 1))]
    layers = check.get("layers", "all")
    if "layer" in rows and len(rows) and layers != "all":
        present = sorted(rows["layer"].unique())
        if layers == "last":
            keep = present[-1:]
        elif layers in ("first_half", "last_half"):
            keep = _half(present, layers == "last_half")
        else:
            keep = [int(layer) for layer in layers]
        rows = rows[rows["layer"].isin(keep)]
    return rows


def _half(present: list[int], deeper: bool) -> list[int]:
    """The deeper half of the blocks among ``present`` layers (sorted), or the layers before it
    (the first of ``present`` where none are), as select_rows reads them."""
    blocks = [layer for layer in present if layer >= 1] or present
    last = blocks[len(blocks) // 2:]
    return last if deeper else [layer for layer in present if layer < last[0]] or present[:1]


def _axes_read(check: Mapping[str, Any], tables: Mapping[str, Mapping[str, pd.DataFrame]]) -> dict[str, Any]:
    """``check`` with the frequency (highest) and rank (1) that :func:`select_rows` reads where
    a table of its metric has that axis and the check names none, so that verdicts say so."""
    out = dict(check)
    for axis, default in (("frequency", "highest"), ("rank", 1)):
        if axis not in out and any(axis in t and t.loc[t["metric"] == check["metric"], axis].notna().any()
                                   for model in tables.values() for t in model.values()):
            out[axis] = default
    return out


def why_no_rows(tables: Mapping[str, pd.DataFrame], check: Mapping[str, Any]) -> str:
    """What in ``check`` selects nothing from a model's tables: the metric, label, frequency,
    rank or layers, with the values the tables do have."""
    rows = pd.concat([t[t["metric"] == check["metric"]] for t in tables.values() if "metric" in t] or [pd.DataFrame()])
    if rows.empty:
        return "no table of it has this metric"
    for axis in ("label", "frequency", "rank"):
        if axis in check and axis in rows and rows[axis].notna().any():
            have = sorted(rows[axis].dropna().unique())
            wanted = check[axis]
            if axis == "frequency" and wanted != "highest" and not ((rows[axis] - float(wanted)).abs() < 1e-9).any():
                return f"no frequency {wanted}; it has {', '.join(f'{f:.4g}' for f in have)} (units of pi)"
            if axis != "frequency" and not set(wanted if isinstance(wanted, list) else [wanted]) & set(have):
                return f"no {axis} {_either(wanted)}; it has {', '.join(map(str, have))}"
    return f"no layer {check.get('layers')}; it has layers {_span(tuple(sorted(int(v) for v in rows['layer'].dropna().unique())))}"


# Why a selected value can be NaN.
_NO_VALUE = ("no image scored, or for a probe none held out: use more images; or head diversity of a model "
             "with one head, which has no pair of heads")
# A difference decides a claim only when it exceeds this many standard errors.
DECISIVE_SE = 2.0


@dataclass(frozen=True)
class Estimate:
    """A selected mean and its standard error (None when the table gives no spread)."""

    value: float
    se: float | None
    layers: tuple[int, ...] = ()  # the layers averaged (none where the table has no layer axis)

    def __str__(self) -> str:
        return f"{self.value:.4g}" + ("" if self.se is None else f" +- {self.se:.2g}")


def row_standard_error(row: Mapping[str, Any]) -> float | None:
    """Standard error of one row: ``std / sqrt(n)`` over images, or for an accuracy in percent
    (a ``*_top1`` metric, no std) ``accuracy_standard_error`` over its ``n`` held-out images;
    None without ``n``, and for other metrics without a std (the image-level spectrum)."""
    n = row.get("n")
    if n is None or pd.isna(n) or n < 1:
        return None
    std = row.get("std")
    if std is not None and not pd.isna(std):
        return float(std) / float(n) ** 0.5
    p = float(row["value"])
    accuracy = str(row.get("metric", "")).endswith("_top1")
    return float(accuracy_standard_error(p, int(n), scale=100.0)) if accuracy and 0.0 <= p <= 100.0 else None


def summary_value(tables: Mapping[str, pd.DataFrame], check: Mapping[str, Any]) -> Estimate | None:
    """Mean ``value`` over the selected rows of the first table that has the metric, with the
    mean of the rows' standard errors (rows share their images, so their errors are taken as
    fully correlated: no shrinking with the number of rows). Rows without a value (NaN: a probe
    with no held-out image) are left out; where every row is such, the value is NaN."""
    for table in tables.values():
        rows = select_rows(table, check)
        layers = tuple(sorted(int(v) for v in rows["layer"].dropna().unique())) if "layer" in rows else ()
        if len(rows) and rows["value"].isna().all():
            return Estimate(float("nan"), None, layers)
        rows = rows[rows["value"].notna()]
        if len(rows):
            errors = [row_standard_error(row) for _, row in rows.iterrows()]
            se = None if any(e is None for e in errors) else sum(errors) / len(errors)
            return Estimate(float(rows["value"].mean()), se, layers)
    return None


def _decide(a: Estimate, b: Estimate, min_difference: float = 0.0) -> bool | None:
    """True when a exceeds b by more than ``DECISIVE_SE`` combined standard errors and by
    more than ``min_difference`` (the metric's units), False when b exceeds a so, None in
    between. Without errors only ``min_difference`` can decide: with it 0, nothing does (a
    gap of any size may be noise)."""
    margin = float(min_difference)
    if a.se is not None and b.se is not None:
        margin = max(margin, DECISIVE_SE * (a.se ** 2 + b.se ** 2) ** 0.5)
    elif margin == 0:
        return None
    if abs(a.value - b.value) <= margin:
        return None
    return a.value > b.value


def resolve_label(check: Mapping[str, Any],
                  tables: Mapping[str, Mapping[str, pd.DataFrame]]) -> dict[str, Any]:
    """``check`` with a list ``label`` replaced by the first of its labels that any table has
    rows for (``[shape, class]`` reads the synthetic set's shape, or an image folder's class);
    unchanged when no table has any of them (it then selects nothing and is named whole)."""
    labels = check.get("label")
    if not isinstance(labels, list):
        return dict(check)
    for label in labels:
        for model_tables in tables.values():
            for table in model_tables.values():
                if len(select_rows(table, {**check, "label": label, "layers": "all"})):
                    return {**check, "label": label}
    return dict(check)  # none present: the claim names them all, and selects nothing


def _either(label: Any) -> str:
    """A label, or a list of them as ``a or b``."""
    return " or ".join(map(str, label)) if isinstance(label, list) else str(label)


def _span(layers: tuple[int, ...]) -> str:
    """``7-12`` for consecutive layers, else ``1, 6, 12``."""
    if len(layers) > 1 and layers == tuple(range(layers[0], layers[-1] + 1)):
        return f"{layers[0]}-{layers[-1]}"
    return ", ".join(map(str, layers))


def _units(tables: Mapping[str, Mapping[str, pd.DataFrame]], metric: str) -> str:
    """The units of ``metric`` as its analysis declares them (``value_units``), if any."""
    from vitprobe.analyzers import analyzer_class, list_analyzers
    from vitprobe.results import metric_units

    names = {name for model in tables.values() for name in model} & set(list_analyzers())
    units = [metric_units(analyzer_class(n).value_units, metric) for n in sorted(names)
             if metric in analyzer_class(n).metrics and analyzer_class(n).value_units]
    return units[0] if units else ""


def _protocol(check: Mapping[str, Any], estimates: Sequence[Estimate | None] = (), units: str = "") -> str:
    """``metric (units), label L, layers last_half (7-12), ...``: with ``estimates``, the layers
    each model's value averaged (``7-12 | 3-4`` in the models' order where they differ), and
    no layers at all for a metric without a layer axis."""
    parts = [str(check["metric"]) + (f" ({units})" if units else "")]
    if "label" in check:
        parts.append(f"label {_either(check['label'])}")
    layers = check.get("layers", "all")
    named = layers if isinstance(layers, str) else ", ".join(map(str, layers))
    found = [e for e in estimates if e is not None]
    spans = list(dict.fromkeys(_span(e.layers) for e in found if e.layers))
    if not found or spans:
        parts.append(f"layers {named}" + (f" ({' | '.join(spans)})" if spans and spans != [named] else ""))
    if "frequency" in check:
        parts.append(f"frequency {check['frequency']}")
    if "rank" in check:
        parts.append(f"rank {check['rank']}" + (" (the largest)" if int(check["rank"]) == 1 else ""))
    return ", ".join(parts)


def evaluate(check: Mapping[str, Any], tables: Mapping[str, Mapping[str, pd.DataFrame]],
             labels: Mapping[str, str]) -> Verdict:
    """Evaluate ``check`` on ``tables[model_key][analysis_name]``.

    ``greater: A, than: B`` agrees when the selected mean of A exceeds that of B by more than
    ``DECISIVE_SE`` standard errors, disagrees when B exceeds A so, and is undecided (None)
    in between. ``peak_inside: true`` agrees when the best model of a sweep is neither the
    first nor the last and beats both of them so, disagrees when an end is best and beats
    every inner model so, and is undecided otherwise.
    A difference that exceeds the errors but not ``min_difference`` (the metric's units, 0 by
    default) leaves the claim undecided: a gap too small to matter is not read as an effect.
    A metric without a standard error (the image-level spectrum) is decided only by a
    ``min_difference`` over 0. A list ``label`` uses the first of its labels the tables have
    (:func:`resolve_label`); tables with a frequency or rank axis are read where the check
    says, else at the highest frequency and rank 1 (:func:`select_rows`).
    """
    check = _axes_read(resolve_label(check, tables), tables)
    least = float(check.get("min_difference", 0.0))
    units = _units(tables, str(check["metric"]))
    chosen = [summary_value(t, check) for t in tables.values()] if check.get("peak_inside") else [
        summary_value(tables.get(check["greater"], {}), check), summary_value(tables.get(check["than"], {}), check)]
    where = (f" ({_protocol(check, chosen, units)}; +- 1 standard error, decided beyond {DECISIVE_SE:g}"
             + (f" and a difference over {least:g}" if least else "") + ")")
    if any(e is not None and e.se is None and not math.isnan(e.value) for e in chosen):  # "+- 1 standard error" untrue
        where = (f" ({_protocol(check, chosen, units)}; no standard error (the table gives no spread over images), "
                 + (f"decided by a difference over {least:g})" if least else
                    "so undecided: give min_difference, in the metric's units, to decide it)"))
    if check.get("peak_inside"):
        values = dict(zip(tables, chosen))
        empty = [labels.get(k, k) for k, v in values.items() if v is not None and math.isnan(v.value)]
        if empty:  # a sweep with a hole has no ends and inside to compare
            return Verdict(None, f"no value for {', '.join(empty)} ({_NO_VALUE}){where}")
        known = {k: v for k, v in values.items() if v is not None}
        if len(known) < 3:
            return Verdict(None, "not enough models with this metric to find an inner peak")
        order = list(known)
        best = max(order, key=lambda k: known[k].value)
        listing = ", ".join(f"{labels.get(k, k)}: {known[k]}" for k in order)
        detail = f"best {labels.get(best, best)} ({listing}){where}"
        if best in (order[0], order[-1]):
            beats_inner = [_decide(known[best], known[k], least) for k in order[1:-1]]
            return Verdict(False if all(beats_inner) else None, detail)
        beats_ends = [_decide(known[best], known[end], least) for end in (order[0], order[-1])]
        return Verdict(True if all(beats_ends) else None, detail)
    a, b = check["greater"], check["than"]
    va, vb = chosen
    if va is None or vb is None:
        lacking = [(k, why_no_rows(tables.get(k, {}), check)) for k, v in ((a, va), (b, vb)) if v is None]
        return Verdict(None, f"no results for {_protocol(check, units=units)}: "
                             + "; ".join(f"{labels.get(k, k)}: {why}" for k, why in lacking))
    if math.isnan(va.value) or math.isnan(vb.value):
        return Verdict(None, f"{labels.get(a, a)} {va} vs {labels.get(b, b)} {vb}: no value to compare "
                             f"({_NO_VALUE}){where}")
    return Verdict(_decide(va, vb, least), f"{labels.get(a, a)} {va} vs {labels.get(b, b)} {vb}{where}")

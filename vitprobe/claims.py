"""Checks of a paper's claims against result tables: does the small-scale run agree?"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import pandas as pd


@dataclass(frozen=True)
class Verdict:
    """The outcome of one claim check; ``agrees`` is None when the tables cannot decide it."""

    agrees: bool | None
    detail: str


def select_rows(table: pd.DataFrame, check: Mapping[str, Any]) -> pd.DataFrame:
    """Rows of ``metric`` (and ``label``) at the chosen ``layers`` and ``frequency``.

    layers: "all", "last", "first_half", "last_half" (the deeper half of the layers the table
    has), or a list of layer numbers; frequency: "highest" or a number (units of pi).
    """
    rows = table[table["metric"] == check["metric"]]
    if "label" in check and "label" in rows:
        rows = rows[rows["label"] == check["label"]]
    if "frequency" in check and "frequency" in rows and len(rows):
        freq = rows["frequency"].max() if check["frequency"] == "highest" else float(check["frequency"])
        rows = rows[(rows["frequency"] - freq).abs() < 1e-9]
    layers = check.get("layers", "all")
    if "layer" in rows and len(rows) and layers != "all":
        present = sorted(rows["layer"].unique())
        if layers == "last":
            keep = present[-1:]
        elif layers == "last_half":
            keep = present[len(present) // 2:]
        elif layers == "first_half":
            keep = present[: max(1, len(present) // 2)]
        else:
            keep = [int(layer) for layer in layers]
        rows = rows[rows["layer"].isin(keep)]
    return rows


def summary_value(tables: Mapping[str, pd.DataFrame], check: Mapping[str, Any]) -> float | None:
    """Mean ``value`` over the selected rows of the first table that has the metric."""
    for table in tables.values():
        rows = select_rows(table, check)
        if len(rows):
            return float(rows["value"].mean())
    return None


def evaluate(check: Mapping[str, Any], tables: Mapping[str, Mapping[str, pd.DataFrame]],
             labels: Mapping[str, str]) -> Verdict:
    """Evaluate ``check`` on ``tables[model_key][analysis_name]``.

    ``greater: A, than: B`` agrees when the selected mean of A exceeds that of B.
    ``peak_inside: true`` agrees when the best model of a sweep is neither the first nor the last.
    """
    if check.get("peak_inside"):
        values = {key: summary_value(t, check) for key, t in tables.items()}
        known = {k: v for k, v in values.items() if v is not None}
        if len(known) < 3:
            return Verdict(None, "not enough models with this metric to find an inner peak")
        order = list(known)
        best = max(order, key=lambda k: known[k])
        listing = ", ".join(f"{labels.get(k, k)}: {known[k]:.3g}" for k in order)
        return Verdict(best not in (order[0], order[-1]), f"best {labels.get(best, best)} ({listing})")
    a, b = check["greater"], check["than"]
    va, vb = summary_value(tables.get(a, {}), check), summary_value(tables.get(b, {}), check)
    if va is None or vb is None:
        return Verdict(None, f"metric {check['metric']} missing from the results")
    return Verdict(va > vb, f"{labels.get(a, a)} {va:.4g} vs {labels.get(b, b)} {vb:.4g}")

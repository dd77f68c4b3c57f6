"""JSON-safe copies of the values vitprobe records (protocols, configs, checkpoint metadata)."""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np


def jsonable(obj: Any) -> Any:
    """A JSON-safe copy: numpy scalars to Python numbers, tuples to lists, paths to str."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)


NOT_RECORDED = "(not recorded)"


def changed_entries(was: Mapping[str, Any], now: Mapping[str, Any]) -> list[tuple[tuple[str, ...], str, str]]:
    """``(name, was, now)`` of each entry that differs between two JSON-like mappings, by name,
    each side as JSON text (``NOT_RECORDED`` where that side lacks the entry: a record of an
    older vitprobe); an entry that is a mapping on both sides (a hybrid's ``mim_hparams``) is
    compared entry by entry, named ``(outer, inner)``."""
    import json

    def text(side: Mapping[str, Any], key: str) -> str:
        return json.dumps(jsonable(side[key]), sort_keys=True) if key in side else NOT_RECORDED

    out: list[tuple[tuple[str, ...], str, str]] = []
    for key in sorted(set(was) | set(now)):
        a, b = text(was, key), text(now, key)
        if a == b:
            continue
        if isinstance(was.get(key), Mapping) and isinstance(now.get(key), Mapping):
            out += [((key, *inner), x, y) for inner, x, y in changed_entries(was[key], now[key])]
        else:
            out.append(((key,), a, b))
    return out


def python_numbers(obj: Any) -> Any:
    """``obj`` with every real number as Python's own int or float (NumPy scalars and Fractions
    converted; bools kept), through dicts, lists and tuples; anything else unchanged.
    What a config records must survive JSON and ``torch.load(weights_only=True)``."""
    if isinstance(obj, Mapping):
        return {k: python_numbers(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(python_numbers(v) for v in obj)
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        return float(obj)
    return obj

"""An analysis described as plain data: what it needs, its metrics and its parameters."""

from __future__ import annotations

import inspect
import json
from typing import Any

from vitprobe.analyzers._params import describe, param_kinds


def _default_value(value: object) -> object:
    """A default as JSON holds it (as typed after --param: true, null, 0.6, "cls", [1, 2]), or
    its repr where JSON has no such value."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return repr(value)


def describe_analyzer(analysis: str | type) -> dict[str, Any]:
    """Name, first docstring paragraph, needs (``images``, or ``labels``/``masks``), metrics,
    units and parameters (name, default where it has one, what it takes) of an analysis (its
    name or class), as plain data: what ``vitprobe analyses --json`` lists."""
    from vitprobe.analyzers._registry import analyzer_class

    cls = analyzer_class(analysis) if isinstance(analysis, str) else analysis
    needs = [what for what, flag in (("labels", "requires_labels"), ("masks", "requires_masks"))
             if getattr(cls, flag, False)]
    params = []
    kinds = param_kinds(cls)
    for name, param in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        first = ""
        if name == "layers":  # where the numbering starts for this analysis
            first = "; 0 is the patch embedding" if cls().lowest_layer() == 0 else "; from 1, the first block"
        entry = {"name": name, "takes": describe(kinds.get(name)) + first}
        if param.default is not param.empty:
            entry["default"] = _default_value(param.default)
        params.append(entry)
    own = cls.__dict__.get("__doc__")  # not a base class's, which describes no analysis
    doc = (" ".join(inspect.cleandoc(own).split("\n\n")[0].split()).replace("``", "")  # reST literals read as plain names
           if own else "(no description: the class has no docstring)")
    return {"name": cls.name, "about": doc, "needs": needs or ["images"], "metrics": list(cls.metrics),
            "units": cls.value_units, "parameters": params}

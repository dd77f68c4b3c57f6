"""``vitprobe analyses``: list the registered analyses, what they need and their parameters."""

from __future__ import annotations

import argparse
import inspect
import json
from typing import Any

from vitprobe.analyzers._params import describe, param_kinds


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``analyses`` sub-command."""
    p = sub.add_parser("analyses", help="list the available analyses and their parameters",
                       description="Every registered analysis: what it needs from the data, "
                                   "the metrics its table holds and the parameters it takes (set "
                                   "with --param NAME.KEY=VALUE, or from Python with "
                                   "analyze(..., analyzer_params={name: {...}})).")
    p.add_argument("--json", action="store_true", help="print the listing as JSON")
    p.set_defaults(func=run)


def _default_value(value: object) -> object:
    """A default as JSON holds it (as typed after --param: true, null, 0.6, "cls", [1, 2]), or
    its repr where JSON has no such value."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return repr(value)


def describe_analyzer(cls: type) -> dict[str, Any]:
    """Name, first docstring paragraph, needs (``images``, or ``labels``/``masks``), metrics,
    units and parameters (name, default where it has one, what it takes) of an analyzer
    class, as plain data."""
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


def run(args: argparse.Namespace) -> int:
    """Print one block per analysis (as JSON with --json)."""
    from vitprobe.analyzers import analyzer_class, list_analyzers

    listing = [describe_analyzer(analyzer_class(name)) for name in list_analyzers()]
    if args.json:
        print(json.dumps(listing, indent=2))
        return 0
    for info in listing:
        params = ", ".join(f"{p['name']}{' = ' + json.dumps(p['default']) if 'default' in p else ''} ({p['takes']})"
                           for p in info["parameters"]) or "-"
        metrics = ", ".join(info["metrics"]) + (f" ({info['units']})" if info["units"] else "")
        print(f"{info['name']}\n  {info['about']}\n  needs: {', '.join(info['needs'])}\n  metrics: {metrics or '-'}"
              f"\n  parameters (--param {info['name']}.KEY=VALUE): {params}")
    return 0

"""``vitprobe analyses``: list the registered analyses, what they need and their parameters."""

from __future__ import annotations

import argparse
import inspect
import json

from vitprobe.analyzers._params import describe, param_kinds


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``analyses`` sub-command."""
    p = sub.add_parser("analyses", help="list the available analyses and their parameters",
                       description="Every registered analysis: what it needs from the data "
                                   "and the parameters it takes (set from Python with "
                                   "analyze(..., analyzer_params={name: {...}})).")
    p.set_defaults(func=run)


def _default_text(value: object) -> str:
    """A default as it would be typed after --param (JSON: true, null, 0.6, "cls")."""
    return json.dumps(value) if value is None or isinstance(value, (bool, int, float, str)) else repr(value)


def describe_analyzer(cls: type) -> dict[str, str]:
    """Name, needs, parameters (with defaults) and the first docstring line of an analyzer class."""
    needs = [what for what, flag in (("labels", "requires_labels"), ("masks", "requires_masks"))
             if getattr(cls, flag, False)]
    params = []
    kinds = param_kinds(cls)
    for name, param in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        default = "" if param.default is param.empty else f" = {_default_text(param.default)}"
        first = ""
        if name == "layers":  # where the numbering starts for this analysis
            first = "; 0 is the patch embedding" if cls().lowest_layer() == 0 else "; from 1, the first block"
        params.append(f"{name}{default} ({describe(kinds.get(name))}{first})")
    own = cls.__dict__.get("__doc__")  # not a base class's, which describes no analysis
    doc = (" ".join(inspect.cleandoc(own).split("\n\n")[0].split()).replace("``", "")  # reST literals read as plain names
           if own else "(no description: the class has no docstring)")
    return {"name": cls.name, "needs": ", ".join(needs) or "images", "parameters": ", ".join(params) or "-",
            "about": doc}


def run(args: argparse.Namespace) -> int:
    """Print one block per analysis."""
    from vitprobe.analyzers import analyzer_class, list_analyzers

    for name in list_analyzers():
        info = describe_analyzer(analyzer_class(name))
        print(f"{info['name']}\n  {info['about']}\n  needs: {info['needs']}\n  parameters (--param "
              f"{name}.KEY=VALUE): {info['parameters']}")
    return 0

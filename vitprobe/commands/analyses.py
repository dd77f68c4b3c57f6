"""``vitprobe analyses``: list the registered analyses, what they need and their parameters."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``analyses`` sub-command."""
    p = sub.add_parser("analyses", help="list the available analyses and their parameters",
                       description="Every registered analysis: what it needs from the data, "
                                   "the metrics its table holds and the parameters it takes (set "
                                   "with --param NAME.KEY=VALUE, or from Python with "
                                   "analyze(..., analyzer_params={name: {...}})).")
    p.add_argument("--json", action="store_true", help="print the listing as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print one block per analysis (as JSON with --json)."""
    from vitprobe.analyzers import describe_analyzer, list_analyzers

    listing = [describe_analyzer(name) for name in list_analyzers()]
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

"""``vitprobe compare``: overlay the results of several run folders in one set of figures."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``compare`` sub-command."""
    p = sub.add_parser(
        "compare", help="overlay several runs' results (legend names each checkpoint)",
        description="Read run folders written by `vitprobe analyze` (a folder with several "
                    "checkpoint sub-folders counts as all of them) and write overlaid figures, "
                    "stacked tables and a report.html.")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (refused if not empty)")
    p.add_argument("--overwrite", action="store_true", help="replace --out once the comparison is complete")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load every run (checked first), then write the comparison."""
    import json

    from vitprobe.output_paths import check_output
    from vitprobe.results import compare

    check_output(args.out, args.overwrite)
    out = compare(args.runs, args.out, overwrite=args.overwrite)
    labels = [str(entry["label"]) for entry in json.loads((out / "runs.json").read_text(encoding="utf-8"))]
    print(f"compared {', '.join(labels)}: {out}/report.html")
    return 0

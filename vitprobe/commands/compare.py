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
    from vitprobe.results import check_output, compare, load_runs, unique_labels

    check_output(args.out, args.overwrite)
    runs = [r for folder in args.runs for r in load_runs(folder)]
    out = compare(runs, args.out, overwrite=args.overwrite)
    print(f"compared {', '.join(unique_labels([r.label for r in runs]))}: {out}/report.html")
    return 0

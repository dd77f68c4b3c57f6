"""``vitprobe compare``: overlay the results of several run folders in one set of figures."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``compare`` sub-command."""
    p = sub.add_parser(
        "compare", help="overlay several runs' results (legend names each checkpoint)",
        description="Read run folders written by `vitprobe analyze` (a folder with several "
                    "checkpoint sub-folders counts as all of them), write overlaid figures, stacked "
                    "tables and a report.html, and print the summary table analyze prints.")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR",
                   help="a run folder (it holds run.json), an analyze --out folder (all its runs), or a recipe "
                        "folder of reproduce --out (the runs in its runs/)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (refused if not empty)")
    p.add_argument("--overwrite", action="store_true", help="replace --out once the comparison is complete")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load every run (checked first), write the comparison, and print the summary table."""
    from vitprobe.commands._summary import print_summary
    from vitprobe.output_paths import check_output
    from vitprobe.results import compare, gather_runs, unique_labels

    check_output(args.out, args.overwrite)
    runs = gather_runs(args.runs)
    out = compare(runs, args.out, overwrite=args.overwrite)
    for run_, label in zip(runs, unique_labels([r.label for r in runs])):
        run_.label = label  # as the comparison names it
    print_summary(runs)
    print(f"compared {', '.join(r.label for r in runs)}: {out}/report.html")
    return 0

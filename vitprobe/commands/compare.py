"""``vitprobe compare``: overlay the results of several run folders in one set of figures."""

from __future__ import annotations

import argparse
from pathlib import Path

from vitprobe.errors import ConfigError


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


def load_runs(folder: str | Path) -> list:
    """The run in ``folder``, or the runs in its sub-folders (an `analyze --out` folder), in the
    order its ``runs.json`` lists them (the order of the checkpoints), others after by name."""
    import json

    from vitprobe.results import Run

    folder = Path(folder)
    if not folder.exists():
        raise ConfigError(f"{folder}: no such folder; pass folders written by `vitprobe analyze --out`")
    if (folder / "run.json").is_file():
        return [Run.load(folder)]
    if folder.is_dir():
        listed = folder / "runs.json"
        order = [str(e.get("label")) for e in json.loads(listed.read_text(encoding="utf-8"))] if listed.is_file() else []
        subs = sorted((p for p in folder.iterdir() if (p / "run.json").is_file()),
                      key=lambda p: (order.index(p.name) if p.name in order else len(order), p.name))
        if subs:
            return [Run.load(p) for p in subs]
    raise ConfigError(f"{folder}: no run.json here or in its sub-folders; pass folders written by `vitprobe analyze --out`")


def run(args: argparse.Namespace) -> int:
    """Load every run (checked first), then write the comparison."""
    from vitprobe.results import check_output, compare, unique_labels

    check_output(args.out, args.overwrite)
    runs = [r for folder in args.runs for r in load_runs(folder)]
    out = compare(runs, args.out, overwrite=args.overwrite)
    print(f"compared {', '.join(unique_labels([r.label for r in runs]))}: {out}/report.html")
    return 0

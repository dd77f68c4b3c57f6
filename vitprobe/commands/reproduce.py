"""``vitprobe reproduce``: regenerate the papers' figures from recipes."""

from __future__ import annotations

import argparse
import os
import json
from pathlib import Path

from vitprobe.commands._data_help import SPEC_HELP
from vitprobe.commands._key_values import parse_analysis_params, parse_key_values
from vitprobe.errors import ConfigError

DEFAULT_OUT = "vitprobe-out/reproduce"


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``reproduce`` sub-command."""
    from vitprobe.recipes import RECIPES, builtin_recipes

    p = sub.add_parser(
        "reproduce", help="regenerate the papers' figures from recipes",
        description="Train or load the models of each recipe, analyse them, draw the figures and "
                    f"judge each claim of the paper. --quick runs the papers' {len(RECIPES)} recipes "
                    f"({', '.join(RECIPES)}) at small scale on the CPU when none is named. Built-in "
                    f"recipes: {', '.join(builtin_recipes())}; docs/recipes.md describes the YAML.")
    p.add_argument("recipes", nargs="*", metavar="RECIPE", help="recipe name or YAML path")
    p.add_argument("--quick", action="store_true",
                   help="small-scale run (the papers' recipes when none is named: " + ", ".join(RECIPES)
                        + "); 10-18 min on 2 CPU cores")
    p.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help=f"output folder (default {DEFAULT_OUT}); a rerun into it reuses the models it trained "
                        "and replaces the figures and reports")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto (cuda when available), for training and analysis")
    p.add_argument("--data", metavar="SPEC", help="replace every recipe's analysis data; " + SPEC_HELP)
    p.add_argument("--model", action="append", metavar="KEY=PATH",
                   help="use this checkpoint for model KEY instead of training it")
    p.add_argument("--num-heads", action="append", metavar="KEY=N",
                   help="the head count of model KEY's checkpoint, for a file that does not give it "
                        "(per-head results and head diversity depend on it)")
    p.add_argument("--param", action="append", metavar="ANALYSIS.KEY=VALUE",
                   help="an analysis parameter for every recipe that runs the analysis (over the "
                        "recipe's own `params`), e.g. knn.k=10; repeat for several")
    p.add_argument("--seed", type=int, metavar="N",
                   help="seed every model the recipes train and their random baselines with N (default: "
                        "each training config's own seed, and 0); run seeds into different --out "
                        "folders to see how far the results move")
    p.add_argument("--num-workers", type=int, default=0, metavar="N", help="data-loading worker processes")
    p.add_argument("--no-progress", action="store_true",
                   help="hide the progress bars and stage lines (the reports are still printed)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Validate all recipes, run them, print where the reports are."""
    from vitprobe.recipes import RECIPES
    from vitprobe.reproduce import reproduce

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # every rank would do the whole job into one folder
        raise ConfigError("vitprobe reproduce runs in one process: drop torchrun (--device cuda uses a GPU); "
                          "`vitprobe train` and `vitprobe analyze` take torchrun")
    recipes = list(args.recipes) or (list(RECIPES) if args.quick else [])
    if not recipes:
        raise ConfigError("reproduce: name a recipe (" + ", ".join(RECIPES) + ") or pass --quick for all")
    reports = reproduce(recipes, args.out, quick=args.quick, data=args.data,
                        checkpoints=parse_key_values(args.model, "--model", "dino=dino_deitsmall16_pretrain.pth",
                                                     as_json=False),
                        device=args.device,
                        num_workers=args.num_workers, progress=not args.no_progress,
                        params=parse_analysis_params(args.param), seed=args.seed,
                        num_heads=parse_key_values(args.num_heads, "--num-heads", "dino=6"))
    print("reports (claims: agree / do not agree / undecided: within 2 standard errors or min_difference, or not measured):")
    for report in reports:
        verdicts = [v["agrees"] for v in json.loads((report.parent / "verdicts.json").read_text(encoding="utf-8"))]
        tally = f"{verdicts.count(True)} / {verdicts.count(False)} / {verdicts.count(None)}"
        print(f"  {report}  ({tally})")
    index = Path(args.out) / "index.html"
    if len(reports) > 1 and index.is_file():
        print(f"index: {index}")
    return 0

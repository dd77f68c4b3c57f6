"""``vitprobe analyze``: analyse one or more checkpoints on a dataset in one streaming pass each."""

from __future__ import annotations

import argparse
import re
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from vitprobe.commands._key_values import parse_analysis_params
from vitprobe.commands._summary import print_summary
from vitprobe.commands._data_help import SPEC_HELP
from vitprobe.errors import ConfigError, OutputExistsError, collected_warnings, errors_naming, warn_labelled, warn_user
from vitprobe.output_paths import RESULT_SUFFIXES, atomic_output, check_output


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``analyze`` sub-command."""
    from vitprobe.models.formats import key_choices

    p = sub.add_parser(
        "analyze", help="analyse checkpoints: tables, figures and a report page",
        description="Stream a dataset once through each checkpoint and run the chosen analyses. "
                    "With --out, writes one sub-folder per checkpoint (CSV, JSON protocol, PNG/SVG, "
                    "report.html) and a combined report.html comparing them. Everything is checked "
                    "before any image is processed.")
    p.add_argument("--checkpoint", action="append", required=True, metavar="PATH",
                   help="checkpoint file (repeat to compare several)")
    p.add_argument("--label", action="append", metavar="NAME",
                   help="name of the run in legends and tables, and of its folder with spaces and separators "
                        "as _ (repeat once per --checkpoint; default: the file's stem, or the run folder of "
                        "a vitprobe training file, with -checkpoint for its checkpoint.safetensors)")
    p.add_argument("--data", required=True, metavar="SPEC",
                   help=SPEC_HELP)
    p.add_argument("--analyses", default="all", metavar="all|a,b,c",
                   help="analyses to run (see `vitprobe analyses`; default all, which skips those the data cannot feed)")
    p.add_argument("--param", action="append", metavar="ANALYSIS.KEY=VALUE",
                   help="an analysis parameter (see `vitprobe analyses`), e.g. knn.pooling=mean, "
                        "knn.k=10, linear_probe.final_norm=true; repeat for several")
    p.add_argument("--batch-size", type=int, default=32, metavar="N", help="images per forward pass (default 32); changes the tables only by rounding")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto (cuda when available)")
    p.add_argument("--out", metavar="DIR", help="output folder (refused if not empty, unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace --out once the new results are complete")
    p.add_argument("--num-heads", action="append", metavar="N",
                   help="heads per block where the checkpoint cannot tell (e.g. MoCo v3 ViT-S: 12); once for "
                        "every --checkpoint, or once per --checkpoint (auto: as the checkpoint tells)")
    p.add_argument("--format", action="append", metavar="NAME",
                   help="checkpoint format, when detection needs help (see `vitprobe models`); once for "
                        "every --checkpoint, or once per --checkpoint (auto: detect)")
    p.add_argument("--key", action="append", metavar="NAME",
                   help=f"which weights of a training checkpoint ({key_choices()}; default first); once "
                        "for every --checkpoint, or once per --checkpoint (auto: the format's default), e.g. "
                        "--checkpoint f --checkpoint f --key auto --key state_dict_ema")
    p.add_argument("--img-size", type=int, metavar="PX",
                   help="analyse at this image size (position embeddings are resampled)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seeds Python, NumPy and torch before the pass (default 0)")
    p.add_argument("--num-workers", type=int, default=0, metavar="N", help="data-loading worker processes")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


def folder_name(label: str) -> str:
    """A file-system-safe folder name for a run label: letters (of any script), digits, ``_ . -``;
    every other run of characters (spaces, separators, undecodable bytes) becomes ``_``, and so
    does the dot of a suffix the output's own files have (``runs.json``, ``report.html``,
    ``knn.png``), so that a run's folder never stands where one of them is written."""
    name = re.sub(r"[^\w.-]+", "_", label).strip("._") or "run"
    stem, dot, suffix = name.rpartition(".")
    return f"{stem}_{suffix}" if dot and f".{suffix.lower()}" in (*RESULT_SUFFIXES, ".html") else name


def run(args: argparse.Namespace) -> int:
    """Prepare every checkpoint (all checks), analyse each, write the outputs, print a summary."""
    from vitprobe import distributed

    env = distributed.setup(args.device)  # under torchrun: join the group, shard the data
    try:
        return _analyze(args, is_main=env.is_main)
    finally:
        distributed.teardown(env)


def _analyze(args: argparse.Namespace, is_main: bool) -> int:
    from vitprobe.analysis import prepare_analysis, run_analysis
    from vitprobe.data.base import MIN_IMAGE_SIZE
    from vitprobe.results import unique_labels, write_comparison

    if args.out is not None:
        check_output(args.out, args.overwrite)
        _refuse_a_run_of_another_output(Path(args.out))
    elif args.overwrite:
        warn_user("--overwrite replaces an --out folder, and none was given: nothing is written (pass --out DIR "
                  "to save tables, figures and a report)")
    if args.img_size is not None and args.img_size < MIN_IMAGE_SIZE:
        raise ConfigError(f"--img-size {args.img_size}: vitprobe's datasets are read at {MIN_IMAGE_SIZE} px or "
                          f"more; choose --img-size {MIN_IMAGE_SIZE} or more (a multiple of the patch size)")
    if args.label is not None and len(args.label) != len(args.checkpoint):
        raise ConfigError(f"--label given {len(args.label)} times for {len(args.checkpoint)} "
                          "--checkpoint; give one --label per --checkpoint, or none")
    repeated = [label for label in dict.fromkeys(args.label or []) if args.label.count(label) > 1]
    if repeated:  # typed twice: not made distinct behind the user's back, as file stems are
        raise ConfigError(f"--label {repeated[0]!r} is given {args.label.count(repeated[0])} times; give each "
                          "--checkpoint its own label (the legends, tables and run folders go by it)")
    count = len(args.checkpoint)
    heads = [None if n is None else head_count(n) for n in per_checkpoint(args.num_heads, "--num-heads", count)]
    per_file = zip(heads, per_checkpoint(args.format, "--format", count), per_checkpoint(args.key, "--key", count))
    load_options = [{k: v for k, v in (("num_heads", n), ("format", fmt), ("key", key),
                                       ("img_size", args.img_size)) if v is not None} for n, fmt, key in per_file]
    params = parse_analysis_params(args.param)
    plans = []
    for path, options in zip(args.checkpoint, load_options):
        with _naming(path, count):
            plans.append(prepare_analysis(path, args.data, args.analyses, args.batch_size, args.device, args.seed,
                                          args.num_workers, analyzer_params=params, load_options=options))
    for plan, label in zip(plans, unique_labels(args.label or [p.label for p in plans])):
        plan.label = label  # the legend's name, as given
    folders = unique_labels([folder_name(plan.label) for plan in plans])
    _warn_if_sizes_differ(plans)
    _warn_if_repeated(plans, args.checkpoint)
    runs, said_by = [], {}
    try:
        for plan, path in zip(plans, args.checkpoint):
            with _naming(path, count), collected_warnings() if count > 1 else nullcontext([]) as said:
                said_by[plan.label] = said
                runs.append(run_analysis(plan, progress=is_main and not args.no_progress))
    finally:  # each warning names its run, unless every run gave it
        warn_labelled(said_by)
    if not is_main:  # rank 0 holds the merged results and writes them
        return 0
    if args.out is not None:
        with atomic_output(args.out, args.overwrite) as tmp:
            for run_, folder in zip(runs, folders):
                (tmp / folder).mkdir()
                run_.write_into(tmp / folder)
            write_comparison(runs, tmp, links={r.label: f"{folder}/report.html" for r, folder in zip(runs, folders)},
                             drawn_in=[tmp / folder for folder in folders])
    print_summary(runs)
    print(f"report: {Path(args.out) / 'report.html'}" if args.out is not None
          else "(pass --out DIR to save tables, figures and a report)")
    return 0


def _refuse_a_run_of_another_output(out: Path) -> None:
    """``--out`` is written as a folder of runs (one per checkpoint, beside their comparison): a
    folder that is one run of another analysis output (it holds ``run.json``, its parent
    ``runs.json``) would become such a folder inside it, and that output would lose the run."""
    if (out / "run.json").is_file() and (out.parent / "runs.json").is_file():
        raise OutputExistsError(f"{out}: is one run of the analysis output {out.parent}, which would lose it "
                                f"(analyze writes a folder of runs there); choose another --out, or overwrite "
                                f"{out.parent} as a whole")


def _naming(path: str, count: int) -> AbstractContextManager[None]:
    """Among several checkpoints, an error names the ``--checkpoint`` it arose with."""
    return errors_naming(f"with --checkpoint {path}", name=str(path)) if count > 1 else nullcontext()


def _warn_if_sizes_differ(plans: list) -> None:
    """Checkpoints that take different image sizes see the data at different resolutions:
    attention distances (pixels at each model's size) and Fourier frequencies do not line up."""
    sizes = {plan.label: plan.info.img_size for plan in plans}
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"{label} {size} px" for label, size in sizes.items())
        warn_user(f"the checkpoints take different image sizes ({listed}), so each reads the data at its "
                  "own resolution and their pixel distances and frequencies do not line up; pass "
                  "--img-size PX to analyse all at one size")


def per_checkpoint(values: list[str] | None, option: str, count: int) -> list[str | None]:
    """One value per --checkpoint of an option given once (for every checkpoint) or once per
    --checkpoint, in order; ``auto`` (and an option not given) is None."""
    if values is None:
        return [None] * count
    if len(values) not in (1, count):
        raise ConfigError(f"{option} given {len(values)} times for {count} --checkpoint; give it once "
                          "(for every checkpoint) or once per --checkpoint (auto where the default fits)")
    return [None if v == "auto" else v for v in (values * count if len(values) == 1 else values)]


def head_count(text: str) -> int:
    """``--num-heads`` as a whole number >= 1, or the one-line error (``auto`` is read before)."""
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"--num-heads must be a whole number >= 1 (or auto), got {text!r}")
    return int(text)


def _warn_if_repeated(plans: list, paths: list[str]) -> None:
    """Checkpoints whose files hold the same bytes (sha256), read with the same format and key,
    give the same tables: say so, since two runs of one model read as two models in every
    comparison."""
    by_hash: dict[tuple[str, ...], list[str]] = {}
    for plan, path in zip(plans, paths):
        read_as = (str(plan.checkpoint.get("sha256")), str(plan.checkpoint.get("format")),
                   str(plan.checkpoint.get("report", {}).get("key")))
        by_hash.setdefault(read_as, []).append(f"{path} ({plan.label})")
    for (digest, *_), same in by_hash.items():
        if len(same) > 1 and digest != "None":
            warn_user(f"{' and '.join(same)} hold the same bytes (sha256 {digest[:12]}: one file, or copies "
                      "of one), so their runs are identical; check the --checkpoint paths")

"""Run recipes: train or load the models, analyse them, draw the figures, judge the claims.

Output of one recipe, under ``OUT/<recipe>/``::

    models/<key>/final.safetensors        trained (reused while its config, objective revision,
                                          encoder and hyper-parameters in force are unchanged,
                                          else trained afresh) or random
    models/.<key>.replaced/               the finished model of another config, kept while a retrain
                                          replaces it (reused if the config goes back to it)
    runs/<key>/                           one analysis run per model (tables, figures, report)
    figures/                              the side-by-side figures of all models
    verdicts.json                         each claim's verdict
    report.html                           each figure beside the claim it tests, with a verdict

The results (runs, figures, verdicts, report) are written into a temp folder and moved into
place together once all of them are whole, so an error or Ctrl-C leaves the previous results
as they were (and never one run on other data beside them).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping

from vitprobe.claims import Verdict, evaluate, resolve_label
from vitprobe.data.spec import relative_path_note
from vitprobe.errors import (ConfigError, OutputExistsError, VitprobeError, abbreviate,
                             errors_naming, is_whole, plural, warn_user, warnings_kept)
from vitprobe.output_paths import (check_output_folder, is_analysis_output, temp_folder_beside, temp_prefix,
                                   user_entries)
from vitprobe.recipes import SET_BY_REPRODUCE, ModelEntry, Recipe

RESULTS = ("runs", "figures", "verdicts.json", "report.html")  # replaced together by each run
_OWN_FIGURE = re.compile(r"(reconstructions_.+|sweep_(linear_probe|knn))\.(png|svg)")


def _say(progress: bool, message: str) -> None:
    if progress:
        print(f"[vitprobe reproduce] {message}", flush=True)


def _training(entry: ModelEntry, folder: Path, device: str, num_workers: int) -> tuple[Any, str, bool]:
    """The TrainConfig of ``entry`` in ``folder``, its identity (the config, the objective's
    revisions, the encoder's architecture and the hyper-parameters in force with a preset's
    values filled in, as ``started.json``/``finished.json`` record it) and whether a finished
    run of it is there to reuse."""
    from vitprobe.train import TrainConfig
    from vitprobe.train.config import resolve_optim
    from vitprobe.train.engine import hparams_in_force, resolve_arch

    config = TrainConfig.from_overrides({**(entry.train or {}), "out": str(folder), "device": device,
                                         "num_workers": num_workers})
    hparams = config.resolved_hparams()
    # hparams as given are left out: the values in force hold them (a default written out changes nothing)
    recorded = {k: v for k, v in config.resolved().items() if k not in {*SET_BY_REPRODUCE, "hparams"}}
    wanted = json.dumps({**recorded,
                         "objective_revisions": config.objective_revisions(),
                         "encoder": resolve_arch(config).to_dict(),
                         "hparams_in_force": hparams_in_force(hparams, resolve_optim(config, hparams))},
                        sort_keys=True)
    return config, wanted, _finished_as(folder, wanted) or _finished_as(_replaced(folder), wanted)


def _finished_as(folder: Path, wanted: str) -> bool:
    """Whether ``folder`` holds a finished training of the identity ``wanted``."""
    finished = folder / "finished.json"
    return ((folder / "final.safetensors").is_file() and finished.is_file()
            and finished.read_text(encoding="utf-8") == wanted)


def _replaced(folder: Path) -> Path:
    """Where a finished model is kept while a retrain of another config replaces it."""
    return folder.with_name(f".{folder.name}.replaced")


def _check_training_data(recipe: Recipe, out: Path, device: str, num_workers: int) -> None:
    """Raise the data error (bad spec, fewer images than a batch) of each model that will be
    trained, before the first trains; a model reused from an earlier run needs no data."""
    from vitprobe.train.engine import check_training_data

    for entry in recipe.models:
        if entry.train is None:
            continue
        config, _, reusable = _training(entry, out / recipe.name / "models" / entry.key, device, num_workers)
        if not reusable:
            try:
                check_training_data(config)
            except VitprobeError as err:
                raise ConfigError(f"{recipe.path}: model {entry.key!r}: {err}"
                                  f"{relative_path_note(str(config.data))}") from None


def _train_checkpoint(entry: ModelEntry, folder: Path, device: str, num_workers: int,
                      progress: bool) -> Path:
    """Train ``entry`` into ``folder``, reusing a finished run of the same config and resuming
    an unfinished one; ``started.json``/``finished.json`` record the config of each."""
    from vitprobe.train import train

    config, wanted, _ = _training(entry, folder, device, num_workers)
    started, finished = folder / "started.json", folder / "finished.json"
    final, kept = folder / "final.safetensors", _replaced(folder)
    if not _finished_as(folder, wanted) and _finished_as(kept, wanted):
        shutil.rmtree(folder, ignore_errors=True)  # the config went back to the model kept aside
        os.replace(kept, folder)
    if _finished_as(folder, wanted):
        _say(progress, f"{entry.key}: reusing {final}")
        return final
    resume = (started.is_file() and started.read_text(encoding="utf-8") == wanted
              and (folder / "checkpoint.safetensors").is_file())
    epochs = config.total_epochs()
    replacing = not resume and finished.is_file()
    why = ""
    if replacing or kept.is_dir():
        before = finished if finished.is_file() else kept / "finished.json"
        why = (f" (its training config or objective changed since {folder} was trained{_changes(before, wanted)}; "
               f"the earlier model is kept in {kept} until the new one is finished)")
    elif not resume and started.is_file():
        why = (f" (its training config or objective changed since {folder} was started"
               f"{_changes(started, wanted)}; the unfinished run there is started afresh)")
    _say(progress, f"{entry.key}: {'resuming' if resume else 'training'} {config.method} for "
                   f"{plural(epochs, 'epoch')} on {config.data}{why}")
    if replacing and not progress:  # a finished model is about to be set aside: said even when quiet
        warn_user(f"{entry.key}: retraining{why}")
    if not resume and folder.is_dir() and user_entries(folder):
        if not started.is_file():
            raise OutputExistsError(f"{folder}: holds files that reproduce did not train; move them "
                                    "or choose another --out")
        if replacing:  # a finished model of another config or objective revision: kept until replaced
            shutil.rmtree(kept, ignore_errors=True)
            os.replace(folder, kept)
        else:  # an unfinished run of another config: nothing finished is lost
            shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    started.write_text(wanted, encoding="utf-8")
    path = Path(train(config, resume=resume, progress=progress))
    finished.write_text(wanted, encoding="utf-8")
    shutil.rmtree(kept, ignore_errors=True)
    return path


def _changes(record: Path, wanted: str, limit: int = 4) -> str:
    """``: seed 1 -> 3, epochs 30 -> 2``: the fields in which the identity ``wanted`` differs
    from the one recorded in ``record`` (a started/finished file), the encoder and the
    hyper-parameters in force key by key (``hyper-parameter out_dim 256 -> 512``); empty if
    unreadable."""
    try:
        old, new = json.loads(record.read_text(encoding="utf-8")), json.loads(wanted)
    except (OSError, ValueError):
        return ""
    if not isinstance(old, dict):
        return ""
    from vitprobe.json_safe import changed_entries

    names = {"objective_revisions": "the objective's revision"}
    nested = {"hparams_in_force": "hyper-parameter", "encoder": "encoder"}  # compared key by key
    changed = []
    for key in sorted(set(old) | set(new)):
        was, now = old.get(key), new.get(key)
        if was == now:
            continue
        if key in nested and isinstance(was, dict) and isinstance(now, dict):
            changed += [f"{nested[key]} {'.'.join(name)} {a} -> {b}" for name, a, b in changed_entries(was, now)]
        elif key in nested and was is None:
            changed.append(f"{nested[key]} not recorded (by an older vitprobe)")
        else:
            changed.append(f"{names.get(key, key)} {json.dumps(was)} -> {json.dumps(now)}")
    return f": {abbreviate(changed, limit)}" if changed else ""


def _random_checkpoint(reference: Path, folder: Path, seed: int) -> Path:
    """A randomly initialised encoder (seeded) of the same architecture as ``reference``."""
    from vitprobe.models import inspect_checkpoint
    from vitprobe.models.architecture import ArchSpec, build_model
    from vitprobe.models.own_format import save_encoder
    from vitprobe.seeding import seeded

    arch = ArchSpec.from_dict(inspect_checkpoint(reference)["arch"])
    with seeded(seed):
        model = build_model(arch)
    return save_encoder(folder / "final.safetensors", model, arch,
                        {"objective": "random_init", "config": {"seed": seed}})


def prepare_checkpoints(recipe: Recipe, out: Path, device: str = "cpu", num_workers: int = 0,
                        progress: bool = True) -> dict[str, Path]:
    """The checkpoint of every model of ``recipe``: given, trained (or reused) or random."""
    paths: dict[str, Path] = {}
    for entry in recipe.models:
        if entry.checkpoint is not None:
            paths[entry.key] = entry.checkpoint
        elif entry.train is not None:
            paths[entry.key] = _train_checkpoint(entry, out / "models" / entry.key, device,
                                                 num_workers, progress)
    for entry in recipe.models:
        if entry.random_like is not None:
            paths[entry.key] = _random_checkpoint(paths[entry.random_like], out / "models" / entry.key,
                                                  recipe.random_seed)
    return paths


def foreign_results(root: Path) -> list[str]:
    """Entries of a recipe's output folder ``root`` that reproduce did not write (and that
    replacing its results would delete): anything beside ``models`` and RESULTS, a run that
    holds other files, and other files among the figures; a file browser's own files are not."""
    from vitprobe.output_paths import foreign_entries

    if not root.is_dir():
        return []
    found = [e.name for e in user_entries(root) if e.name not in ("models", *RESULTS) and not e.name.startswith(".")]
    runs, figures = root / "runs", root / "figures"
    if runs.is_dir():
        for run in user_entries(runs):
            ours = run.is_dir() and not run.is_symlink() and is_analysis_output(run)
            found += [f"runs/{run.name}/{e}" for e in foreign_entries(run)] if ours else [f"runs/{run.name}"]
    if figures.is_dir():
        own = [e.name for e in figures.iterdir() if _OWN_FIGURE.fullmatch(e.name)]
        found += ([f"figures/{e}" for e in foreign_entries(figures, own)] if is_analysis_output(figures)
                  else ["figures/"])
    return sorted(found)


def _check_results_replaceable(root: Path) -> None:
    foreign = foreign_results(root)
    if foreign:
        raise OutputExistsError(f"{root}: holds {abbreviate(foreign, 3)}, which reproduce did not write and would "
                                "delete with the old results; move them out or choose another --out")


def _publish_results(staged: Path, root: Path) -> None:
    """Move the RESULTS in ``staged`` into ``root`` in place of the old ones (renames only)."""
    try:
        _check_results_replaceable(root)  # again: a file may have been put there during the run
    except OutputExistsError as err:
        raise OutputExistsError(f"{err}; the new results are kept in {staged}") from None
    old = root / f"{temp_prefix(root / 'results', 'old')}{uuid.uuid4().hex[:8]}"
    old.mkdir()
    for name in RESULTS:
        if (root / name).exists():
            os.replace(root / name, old / name)
    for name in RESULTS:
        if (staged / name).exists():
            os.replace(staged / name, root / name)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(staged, ignore_errors=True)


def run_recipe(recipe: Recipe, out: str | Path, device: str = "cpu", num_workers: int = 0,
               progress: bool = True) -> Path:
    """Regenerate one study into ``out/<recipe name>``; returns the path of its report page."""
    from vitprobe.analysis import analyze
    from vitprobe.results import write_comparison

    root = Path(out) / recipe.name
    _check_results_replaceable(root)
    if (root / "report.html").exists():
        _say(progress, f"{recipe.name}: replacing the results of an earlier run in {root} "
                       "(its models are reused where nothing that trains them changed)")
    root.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    paths = prepare_checkpoints(recipe, root, device, num_workers, progress)
    staged = temp_folder_beside(root / "results")
    try:
        runs = {}
        for entry in recipe.models:
            _say(progress, f"{entry.key}: analysing on {recipe.data} ({', '.join(recipe.analyses)})")
            with errors_naming(f"{recipe.path}: model {entry.key!r}"), warnings_kept(entry.label):
                run = analyze(str(paths[entry.key]), recipe.data, analyses=recipe.analyses,
                              batch_size=recipe.batch_size, device=device, progress=progress,
                              analyzer_params=recipe.params, label=entry.label,
                              load_options={"num_heads": entry.num_heads} if entry.num_heads else None)
            run.save(staged / "runs" / entry.key)
            runs[entry.key] = run
        differences = _measured_unalike(recipe, runs)
        (staged / "figures").mkdir()
        write_comparison(list(runs.values()), staged / "figures")
        extra = _draw_figures(_extra_figure_makers(recipe, runs, paths, device), staged / "figures")
        tables = {key: {name: res.table for name, res in run.items()} for key, run in runs.items()}
        labels = {entry.key: entry.label for entry in recipe.models}
        verdicts = [_unless_uninformative(_unless_on_other_grids(evaluate(claim.check, tables, labels), claim, recipe,
                                                                 runs, labels), claim, recipe, runs, labels)
                    for claim in recipe.claims]
        (staged / "report.html").write_text(
            _report_html(recipe, runs, tables, verdicts, extra, differences, time.monotonic() - started),
            encoding="utf-8")
        (staged / "verdicts.json").write_text(json.dumps(
            [{"figure": c.figure, "claim": c.text, "agrees": v.agrees, "detail": v.detail,
              "protocol": _claim_protocol(c.check, runs, labels), "data": recipe.data, "changes": recipe.changes}
             for c, v in zip(recipe.claims, verdicts)], indent=2), encoding="utf-8")
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    _publish_results(staged, root)
    report = root / "report.html"
    _say(progress, f"{recipe.name}: report at {report}")
    return report


def _compared(check: Mapping[str, Any], runs: Mapping[str, Any]) -> list[str]:
    """The keys of the runs a claim's ``check`` compares: its ``greater`` and ``than``, or every
    run (``peak_inside``)."""
    return [k for k in ((check["greater"], check["than"]) if "greater" in check else runs) if k in runs]


def _unless_on_other_grids(verdict: Verdict, claim: Any, recipe: Recipe, runs: dict,
                           labels: dict[str, str]) -> Verdict:
    """``verdict``, or undecided where the claim compares models analysed on grids that its
    metric's analysis does not line up across (``grid_bound``): for ``"pixels"`` another image or
    patch size, for ``"patches"`` another number of patch rows and columns (224 px in patches of
    16 and 112 px in patches of 8 are both 14 x 14). A gap there may be the grid's alone."""
    from vitprobe.analyzers import analysis_giving, analyzer_class
    from vitprobe.comparability import join_by_run

    analysis = analysis_giving(claim.check.get("metric"), recipe.analyses)
    bound = None if analysis is None else analyzer_class(analysis).grid_bound
    if bound is None:
        return verdict
    keys = [k for k in _compared(claim.check, runs) if isinstance(runs[k].checkpoint.get("arch"), dict)]
    grids = [_grid_of(runs[k], analysis, bound) for k in keys]
    if len(set(grids)) < 2:
        return verdict
    fix = "one image size and patch size" if bound == "pixels" else "one patch grid (image size / patch size)"
    return Verdict(None, f"{verdict.detail}; undecided: the models were analysed on different patch grids "
                         f"({join_by_run(grids, [labels.get(k, k) for k in keys])}), on which {analysis}'s numbers "
                         f"do not line up; compare models of {fix}")


def _unless_uninformative(verdict: Verdict, claim: Any, recipe: Recipe, runs: dict,
                          labels: dict[str, str]) -> Verdict:
    """``verdict``, or undecided where every model the claim compares has an outcome under which
    its metric measures nothing of what it is named for (the analysis's ``uninformative_when``:
    the IoU of masks that every head spreads evenly); against a model that attends, such a model
    is a baseline, so one of them is not enough."""
    from vitprobe.analyzers import analysis_giving, analyzer_class

    metric = claim.check.get("metric")
    analysis = analysis_giving(metric, recipe.analyses)
    if analysis is None or verdict.agrees is None:
        return verdict
    keys = [k for k in _compared(claim.check, runs) if analysis in runs[k]]
    for outcome, (metrics, why) in analyzer_class(analysis).uninformative_when.items():
        if metric in metrics and keys and all(runs[k][analysis].protocol.get(outcome) is True for k in keys):
            return Verdict(None, f"{verdict.detail}; undecided: every model compared has {outcome} "
                                 f"({', '.join(labels.get(k, k) for k in keys)}): {why}")
    return verdict


def _grid_of(run: Any, analysis: str, bound: str) -> str:
    """The grid ``run`` measured ``analysis`` on: ``S px, patch P`` (``"pixels"``) or ``HxW
    patches`` (``"patches"``); S is the image size the analysis read (a model of dynamic image size
    reads the data's), else the model's."""
    arch = run.checkpoint["arch"]
    size = run[analysis].protocol.get("image_size", arch.get("img_size")) if analysis in run else arch.get("img_size")
    patch = arch.get("patch_size")
    if bound == "patches" and isinstance(size, int) and isinstance(patch, int) and patch > 0:
        return f"{size // patch}x{size // patch} patches"
    return f"{size} px, patch {patch}"


def _measured_unalike(recipe: Recipe, runs: dict) -> list[str]:
    """Say (prefixed by the recipe's name) and return the comparability warnings of the runs
    (``warn_if_incomparable``), e.g. models read at different image sizes, whose pixel
    distances and frequencies do not line up; the report sets each under its claims."""
    from vitprobe.comparability import warn_if_incomparable

    with warnings_kept(recipe.name) as said:
        warn_if_incomparable({name: [(run.label, run[name].protocol) for run in runs.values() if name in run]
                              for name in recipe.analyses})
    return said


def _bears_on(text: str, figure: str, label: Any) -> bool:
    """Whether a warning qualifies a claim drawn in ``figure`` about ``label``. A warning names
    its analysis first and, for a probe, the label (``knn on label 'shape': ...``,
    ``attention_jaccard: ...``); a sweep's figure ``sweep_<analysis>`` reads that analysis."""
    name, _, about = text.split(":", 1)[0].partition(" ")
    if name != figure.removeprefix("sweep_"):
        return False
    named = re.fullmatch(r"on label '(.*)'", about)
    return named is None or label is None or named.group(1) == str(label)


def _extra_figure_makers(recipe: Recipe, runs: dict, paths: dict[str, Path],
                         device: str) -> dict[str, Callable[[], Any]]:
    """A drawing function for each of ``recipe.extra_figures`` (``sweep_<probe>``,
    ``reconstructions_<key>``; names that _OWN_FIGURE matches)."""
    from vitprobe.plots.reconstructions import draw_reconstructions
    from vitprobe.plots.sweep import draw_sweep
    from vitprobe.train.reconstruct import reconstruct_examples

    entries = {entry.key: entry for entry in recipe.models}
    drawn: dict[str, Callable[[], Any]] = {}
    for stem in recipe.extra_figures:
        kind, _, name = stem.partition("_")
        if kind == "sweep":
            values = [float(v) for v in (recipe.sweep or {})["values"]]
            results = [runs[entry.key][name] for entry in recipe.models]
            drawn[stem] = lambda values=values, results=results: draw_sweep(values, results, "lambda")
        else:
            drawn[stem] = lambda path=paths[name], label=entries[name].label: draw_reconstructions(
                reconstruct_examples(path, recipe.data, count=6, device=device), label)
    return drawn


def _draw_figures(makers: dict[str, Callable[[], Any]], folder: Path) -> list[str]:
    """Draw each figure into ``folder`` as PNG and SVG; returns their file stems."""
    from vitprobe.plots import figure_bytes

    for stem, make in makers.items():
        figure = make()
        for fmt in ("png", "svg"):
            (folder / f"{stem}.{fmt}").write_bytes(figure_bytes(figure, fmt))
    return list(makers)


def _verdict_badge(verdict: Verdict) -> str:
    if verdict.agrees is None:
        return '<b style="color:#777">undecided</b>'
    return ('<b style="color:#1a7f37">agrees</b>' if verdict.agrees
            else '<b style="color:#b42318">does not agree</b>')


def _data_text(runs: dict) -> str:
    """``dataset <spec> (n=...)``: the data the runs read, as figure captions name it."""
    from vitprobe.plots.style import protocol_caption

    protocols = [result.protocol for run in runs.values() for result in run.values()]
    return protocol_caption([{"dataset": p.get("dataset")} for p in protocols[:1]])


def _claim_protocol(check: Mapping[str, Any], runs: dict, labels: Mapping[str, str]) -> str:
    """The protocol of the numbers a claim compares, as the figure captions give it (dataset,
    image size, pooling, k, threshold, held-out images, ...; ``|`` between the models where
    they differ): that of the analysis holding the claim's metric, in each model compared; what
    a model's layer 0 holds only where the claim reads layer 0."""
    from vitprobe.analyzers.base import protocol_of_layers
    from vitprobe.claims import select_rows
    from vitprobe.plots.style import protocol_caption

    def read(table: Any, protocol: dict[str, Any]) -> dict[str, Any]:
        rows = select_rows(table, check)
        return protocol_of_layers(protocol, rows["layer"] if "layer" in rows else ())

    keys = list(runs) if check.get("peak_inside") else [check["greater"], check["than"]]
    found = [(labels.get(key, key), read(result.table, result.protocol)) for key in keys if key in runs
             for result in runs[key].values() if check["metric"] in set(result.table["metric"])]
    return protocol_caption([p for _, p in found], labels=[label for label, _ in found])


def _origin_text(checkpoint: dict[str, Any]) -> str:
    """Where a model's weights come from, for its line in the report: ``, trained with mae,
    training seed N`` where a vitprobe training record names the objective (the file may be
    given for a model of another objective: ``--model simmim=FILE``), ``, initialisation seed N``
    for a random baseline, else ``, <format> format``. The seed is the checkpoint's own."""
    training = checkpoint.get("report", {}).get("training")
    objective = training.get("objective") if isinstance(training, dict) else None
    config = training.get("config") if isinstance(training, dict) else None
    seed = config.get("seed") if isinstance(config, dict) else None
    if objective == "random_init":
        return f", initialisation seed {seed}" if is_whole(seed) else ""
    if isinstance(objective, str):
        return f", trained with {objective}" + (f", training seed {seed}" if is_whole(seed) else "")
    return f", {checkpoint['format']} format" if checkpoint.get("format") else ""


def _report_html(recipe: Recipe, runs: dict, tables: dict, verdicts: list[Verdict], extra: list[str],
                 differences: list[str], seconds: float) -> str:
    """One page: the models (with any collapse their training warned of), the claims with their
    figures, verdicts and the warnings that bear on them, then every other figure. ``tables``:
    model key -> analysis -> table, as the claims were evaluated on."""
    from vitprobe.models.loading import training_warnings

    esc = html.escape
    models = "".join(
        f"<li><b>{esc(e.label)}</b>{f' ({esc(e.role)})' if e.role else ''}: "
        f"{esc(str(runs[e.key].checkpoint.get('path', '')))} "
        f"(sha256 {esc(str(runs[e.key].checkpoint.get('sha256', ''))[:12])}"
        f"{esc(_origin_text(runs[e.key].checkpoint))})"
        + "".join(f"<br><b>training warned</b>: {esc(w)}"
                  for w in training_warnings(runs[e.key].checkpoint.get("report", {})))
        + "".join(f"<br><b>analysis warned</b>: {esc(w)}" for w in runs[e.key].meta.get("analysis_warnings", []))
        + "</li>"
        for e in recipe.models)
    parts = [
        "<!doctype html><meta charset='utf-8'>",
        f"<title>{esc(recipe.title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
        "img{max-width:100%;border:1px solid #ddd}.claim{margin:2em 0}</style>",
        f"<h1>{esc(recipe.title)}</h1><p>{esc(recipe.paper)}</p>",
        f"<p>{esc(_data_text(runs))}; analyses: {esc(', '.join(recipe.analyses))}; "
        f"{seconds:.0f} s.</p>",
        *(f"<p><b>not run</b>: {esc(name)}: it {esc(why)}</p>" for name, why in recipe.skipped.items()),
        f"<p>{esc('run with ' + ', '.join(recipe.changes) if recipe.changes else 'the recipe as written')}.</p>"
        f"<ul>{models}</ul>",
        *(f"<p><b>measured unalike</b>: {esc(text)}</p>" for text in differences),
    ]
    shown = set()
    drawn = [*dict.fromkeys(n for r in runs.values() for n in r), *extra]
    for claim, verdict in zip(recipe.claims, verdicts):
        shown.add(claim.figure)
        figure = (f"<img src='figures/{esc(claim.figure)}.png' alt='{esc(claim.figure)}'>"
                  if claim.figure in drawn else "<p>(not drawn: its analysis did not run on this data)</p>")
        compared = _compared(claim.check, runs)
        label = resolve_label(claim.check, tables).get("label")
        caveats = "".join(f"<p><i>Read with:</i> {esc(run.label)}: {esc(w)}</p>" for key, run in runs.items()
                          if key in compared for w in run.meta.get("analysis_warnings", [])
                          if _bears_on(w, claim.figure, label))
        caveats += "".join(f"<p><i>Read with:</i> {esc(text)}</p>" for text in differences
                           if _bears_on(text, claim.figure, label))
        parts.append(
            f"<div class='claim'><h2>{esc(claim.figure)}</h2><p><i>Paper:</i> {esc(claim.text)}</p>"
            f"<p><i>Here:</i> {_verdict_badge(verdict)} ({esc(verdict.detail)})</p>{caveats}{figure}</div>")
    others = [name for name in drawn if name not in shown]
    for name in others:
        parts.append(f"<div class='claim'><h2>{esc(name)}</h2>"
                     f"<img src='figures/{esc(name)}.png' alt='{esc(name)}'></div>")
    parts.append("<p>Per-model tables, protocols and figures: "
                 + ", ".join(f"<a href='runs/{esc(k)}/report.html'>{esc(runs[k].label)}</a>" for k in runs)
                 + ".</p>")
    return "\n".join(parts)


def reproduce(recipes: list[str], out: str | Path, quick: bool = False, data: str | None = None,
              checkpoints: dict[str, str] | None = None, device: str = "cpu", num_workers: int = 0,
              train_overrides: dict[str, Any] | None = None, progress: bool = True,
              params: dict[str, dict[str, Any]] | None = None, seed: int | None = None,
              num_heads: dict[str, int] | None = None) -> list[Path]:
    """Validate every recipe and its output folder first (one-line errors), then run them;
    returns the report paths. ``params`` (analysis -> parameters) apply to every recipe that
    runs the analysis, and ``checkpoints`` (model key -> file) and ``num_heads`` (model key ->
    head count, for a file that does not give it) to every recipe with that model;
    ``seed`` replaces every training seed and the random baselines' (see load_recipe)."""
    from vitprobe.recipes import RECIPES, load_recipe

    if not recipes:
        raise ConfigError(f"reproduce: name a recipe ({', '.join(RECIPES)}) or use --quick")
    loaded = [load_recipe(r, quick=quick, data=data, checkpoints=checkpoints, train_overrides=train_overrides,
                          params=params, seed=seed, checkpoints_may_miss=len(recipes) > 1, num_heads=num_heads)
              for r in recipes]
    for flag, given in (("--model", checkpoints), ("--num-heads", num_heads)):
        missed = sorted(set(given or {}) - {m.key for r in loaded for m in r.models})
        if missed:
            models = sorted({m.key for r in loaded for m in r.models})
            raise ConfigError(f"reproduce: {flag} {missed[0]}=...: no recipe has a model {missed[0]!r}; "
                              f"models: {', '.join(models)}")
    unused = sorted(set(params or {}) - {a for r in loaded for a in r.analyses})
    if unused:
        raise ConfigError(f"reproduce: parameters given for {', '.join(unused)}, which no recipe runs; "
                          "drop them or run a recipe that has the analysis")
    names = [r.name for r in loaded]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"reproduce: recipes named {', '.join(repeated)} more than once would write "
                          "into one folder; give each recipe once, or give them different names")
    check_output_folder(out)
    if is_analysis_output(Path(out)):
        raise OutputExistsError(f"{out} holds an analysis (run.json or runs.json), which the recipes' folders "
                                "would mix with; choose another --out")
    for recipe in loaded:
        _check_results_replaceable(Path(out) / recipe.name)
        _check_training_data(recipe, Path(out), device, num_workers)
    reports = [run_recipe(r, out, device=device, num_workers=num_workers, progress=progress) for r in loaded]
    if len(reports) > 1:
        index = Path(out) / "index.html"
        index.write_text("<!doctype html><meta charset='utf-8'><title>vitprobe reproduce</title><ul>"
                         + "".join(f"<li><a href='{html.escape(str(p.relative_to(out)))}'>"
                                   f"{html.escape(p.parent.name)}</a></li>" for p in reports)
                         + "</ul>", encoding="utf-8")
    return reports

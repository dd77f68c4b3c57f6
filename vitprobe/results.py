"""Results of analyses: tidy tables with their protocol, saved as CSV/JSON/PNG/SVG, gathered
into runs with an HTML report, and compared across checkpoints.

On-disk layout of a run folder::

    run.json             label, checkpoint info, result names
    report.html          self-contained page: every figure (inline) and every table
    <name>.csv           the tidy table (byte-identical for identical numbers)
    <name>.json          the protocol (dataset, pooling, threshold, checkpoint, ...)
    <name>.png / .svg    the figure
    <name>.npz           array artifacts, when the analyzer keeps any

Every folder is written atomically: into a hidden temporary sibling that is renamed into
place once complete, so an interrupted save never leaves a folder that looks finished.
"""

from __future__ import annotations

import copy
import html
import json
import os
import re
import shutil
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from vitprobe.errors import ConfigError, OutputExistsError, abbreviate, collected_warnings, warn_user
from vitprobe.json_safe import jsonable
from vitprobe.output_paths import atomic_output, holds, write_atomically

if TYPE_CHECKING:
    from matplotlib.figure import Figure  # imported lazily: results load without matplotlib

RUN_FORMAT_VERSION = 1
INT_COLUMNS = ("layer", "head", "rank", "n")
_HTML_ROWS = 12  # a result's rows shown in Jupyter
FLOAT_COLUMNS = ("frequency", "value", "std")
COLUMN_ORDER = ("metric", "layer", "head", "frequency", "rank", "label", "value", "std", "n")
"""The documented order of a table's columns; others (an analyzer's own) follow."""
# pandas < 3 parses floats exactly only when asked to; pandas 3 always does (and warns if asked).
_EXACT_FLOATS = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


_DAMAGED = "the folder is incomplete or damaged; analyse again (`vitprobe analyze`) or restore it"


def _read_json(path: Path, kind: type) -> Any:
    """The JSON document in ``path``, which must be a ``kind`` (dict or list); a one-line
    ConfigError naming the file otherwise."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ConfigError(f"{path}: cannot read it ({type(err).__name__}: {str(err).splitlines()[0]}); {_DAMAGED}") from None
    if not isinstance(value, kind):
        raise ConfigError(f"{path}: holds a JSON {type(value).__name__}, not the {kind.__name__} vitprobe "
                          f"writes; {_DAMAGED}")
    return value


def _read_table(path: Path) -> pd.DataFrame:
    """A result table written by :meth:`Result.save`; a file that is empty, cut short (it ends
    mid-line) or unreadable is a one-line ConfigError naming it."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            f.seek(max(size - 1, 0))
            last = f.read(1)
        if size == 0 or last != b"\n":
            raise ConfigError(f"{path}: {'is empty' if size == 0 else 'ends mid-line (cut short)'}; {_DAMAGED}")
        return pd.read_csv(path, **_EXACT_FLOATS)
    except (OSError, UnicodeDecodeError, ValueError, pd.errors.ParserError) as err:
        raise ConfigError(f"{path}: cannot read it ({type(err).__name__}: {str(err).splitlines()[0]}); {_DAMAGED}") from None


def _check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"{what} {name!r} is not a usable file name; use letters, digits, '_', '.' or '-'")
    return name


def _normalise_table(table: pd.DataFrame) -> pd.DataFrame:
    """Index columns as nullable Int64, measurements as float64, columns in COLUMN_ORDER, a
    fresh RangeIndex."""
    order = [c for c in COLUMN_ORDER if c in table.columns] + [c for c in table.columns if c not in COLUMN_ORDER]
    table = table[order].reset_index(drop=True).copy()
    for col in INT_COLUMNS:
        if col in table.columns:
            table[col] = table[col].astype("Int64")
    for col in FLOAT_COLUMNS:
        if col in table.columns:
            table[col] = table[col].astype("float64")
    return table


def _write_text(path: Path, text: str) -> None:
    """Write a text file through a temporary name (:func:`write_atomically`); UTF-8, with a
    path that the locale could not decode (a surrogate escape) written back as its own bytes."""
    write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8", errors="surrogateescape",
                                                      newline="\n"))


def _dump_json(obj: Any) -> str:
    return json.dumps(jsonable(obj), indent=2, sort_keys=True) + "\n"


class Result:
    """One analysis: a tidy table (columns among metric, layer, head, frequency, rank, label,
    value, std, n), the protocol that produced it, and optional array artifacts."""

    def __init__(
        self,
        name: str,
        table: pd.DataFrame,
        protocol: dict[str, Any],
        artifacts: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.name = _check_name(name, "result name")
        missing = {"metric", "value"} - set(table.columns)
        if missing:
            raise ValueError(f"result {name!r}: table lacks columns {sorted(missing)}")
        self.table = _normalise_table(table)
        self.protocol = dict(protocol)
        self.artifacts = {k: np.asarray(v) for k, v in (artifacts or {}).items()}
        self.run_label: str | None = None  # set by the Run that holds it: the figure's legend

    def __repr__(self) -> str:
        metrics = ", ".join(sorted(self.table["metric"].unique()))
        return f"Result({self.name!r}, {len(self.table)} rows, metrics: {metrics})"

    def _repr_html_(self) -> str:
        """In Jupyter: the name, the protocol as figure captions give it, and the first rows (a
        cell with no such number, such as the head of a row over all heads, reads ``-``, as the
        command line's summary shows it)."""
        from vitprobe.plots.report import frame_html
        from vitprobe.plots.style import protocol_caption

        head = frame_html(self.table.head(_HTML_ROWS))
        more = f"<p>... {len(self.table) - _HTML_ROWS} more rows (.table)</p>" if len(self.table) > _HTML_ROWS else ""
        units = str(self.protocol.get("value_units", ""))
        return (f"<p><b>{html.escape(self.name)}</b>" + (f" ({html.escape(units)})" if units else "") + "<br>"
                f"<small>{html.escape(protocol_caption([self.protocol]))}</small></p>{head}{more}")

    def metric(self, metric: str) -> pd.DataFrame:
        """The rows of one metric (KeyError naming the metrics there if it has none)."""
        rows = self.table[self.table["metric"] == metric]
        if rows.empty:
            raise KeyError(f"{self.name} has no metric {metric!r}; its metrics: "
                           f"{', '.join(map(str, self.table['metric'].unique()))}")
        return rows.reset_index(drop=True)

    def plot(self, label: str | None = None) -> Figure:
        """Draw this result's figure (see ``vitprobe.plots``); the legend names ``label``, else
        the run that holds the result."""
        from vitprobe.plots import draw

        return draw(self.name, [(label or self.run_label or self.name, self)])

    def save(self, folder: str | os.PathLike[str], label: str | None = None,
             overwrite: bool = False) -> Path:
        """Write ``<name>.csv/.json/.png/.svg`` (+ ``.npz``) into ``folder``; return the CSV's path.

        A result of the same name already there is refused unless ``overwrite``. Each file
        appears complete or not at all; the CSV is written last, so its presence means the
        whole result was saved.
        """
        csv = Path(folder) / f"{self.name}.csv"
        if csv.exists() and not overwrite:
            raise OutputExistsError(f"{csv} already exists; pass overwrite=True or another folder")
        self._write_files(Path(folder), label)
        return csv

    def _write_files(self, folder: Path, label: str | None) -> str:
        """Write the result's files (see :meth:`save`); return the SVG text of its figure."""
        from vitprobe.plots import figure_bytes

        folder.mkdir(parents=True, exist_ok=True)
        _write_text(folder / f"{self.name}.json", _dump_json(self.protocol))
        if self.artifacts:
            write_atomically(folder / f"{self.name}.npz", lambda tmp: np.savez_compressed(tmp, **self.artifacts))
        figure = self.plot(label)
        svg = ""
        for fmt in ("png", "svg"):
            data = figure_bytes(figure, fmt)
            write_atomically(folder / f"{self.name}.{fmt}", lambda tmp: tmp.write_bytes(data))
            if fmt == "svg":
                svg = data.decode("utf-8")
        _write_text(folder / f"{self.name}.csv", self.table.to_csv(index=False, lineterminator="\n"))
        return svg

    @classmethod
    def load(cls, folder: str | os.PathLike[str], name: str | None = None) -> "Result":
        """Read a result written by :meth:`save`: ``load(folder, name)``, or ``load(csv)`` with
        the path :meth:`save` returned (its ``.json`` beside it)."""
        folder = Path(folder)
        if name is None:
            if folder.suffix not in (".csv", ".json"):
                raise ConfigError(f"{folder}: name the result, Result.load(folder, name), or pass the "
                                  "<name>.csv that Result.save returned")
            folder, name = folder.parent, folder.stem
        csv = folder / f"{name}.csv"
        if not csv.is_file():
            raise ConfigError(f"{csv}: no such result table; pass a folder written by `vitprobe analyze`")
        table = _read_table(csv)
        protocol_path = folder / f"{name}.json"
        if not protocol_path.is_file():
            raise ConfigError(f"{protocol_path}: missing (the protocol of {csv.name}); {_DAMAGED}")
        protocol = _read_json(protocol_path, dict)
        artifacts = None
        npz = folder / f"{name}.npz"
        if npz.is_file():
            try:
                with np.load(npz, allow_pickle=False) as arrays:
                    artifacts = {k: arrays[k] for k in arrays.files}
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:  # a zip cut short or not a zip
                raise ConfigError(f"{npz}: cannot read it ({type(err).__name__}); {_DAMAGED}") from None
        try:
            return cls(name, table, protocol, artifacts)
        except ValueError as err:  # a table without the metric and value columns
            raise ConfigError(f"{csv}: {err}; {_DAMAGED}") from None


class Run(Mapping[str, Result]):
    """The results of one checkpoint on one dataset: a mapping name -> Result, plus the
    checkpoint's info (format, arch, sha256, path) and a short ``label`` used in legends."""

    def __init__(
        self,
        results: Mapping[str, Result] | list[Result],
        checkpoint: dict[str, Any] | None = None,
        label: str = "run",
        meta: dict[str, Any] | None = None,
    ) -> None:
        items = results.values() if isinstance(results, Mapping) else results
        self._results = {r.name: copy.copy(r) for r in items}  # each knows this run's label
        self.checkpoint = dict(checkpoint or {})
        self.label = label
        self.meta = dict(meta or {})
        self.folder: Path | None = None  # where it was read from (:meth:`load`) or saved to (:meth:`save`)

    @property
    def label(self) -> str:
        """The run's name in legends, tables and folder names (its results' figures follow it)."""
        return self._label

    @label.setter
    def label(self, label: str) -> None:
        if not isinstance(label, str) or not label.strip():
            raise ConfigError(f"run label {label!r} must be a non-empty string")
        self._label = label
        for result in self._results.values():
            result.run_label = label

    def __getitem__(self, name: str) -> Result:
        """The Result of analysis ``name`` (KeyError naming the analyses this run holds)."""
        if name not in self._results:
            raise KeyError(f"run {self.label!r} has no analysis {name!r}; it has: {', '.join(self._results)}")
        return self._results[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._results)

    def __len__(self) -> int:
        return len(self._results)

    def __repr__(self) -> str:
        return f"Run({self.label!r}, results: {', '.join(self._results)})"

    def _repr_html_(self) -> str:
        """In Jupyter: the label, the checkpoint and :meth:`summary`."""
        from vitprobe.plots.report import frame_html

        path = self.checkpoint.get("path") if isinstance(self.checkpoint, dict) else None
        table = frame_html(self.summary())
        skipped = self.meta.get("skipped_analyses") or {}
        said = "".join(f"<br><small>skipped {html.escape(str(name))}: it {html.escape(str(why))}</small>"
                       for name, why in skipped.items()) if isinstance(skipped, dict) else ""
        return (f"<p><b>{html.escape(self.label)}</b>" + (f" ({html.escape(str(path))})" if path else "")
                + "<br><small>each value at the analysis's deepest layer; run[name] for a whole table</small>"
                + said + "</p>" + table)

    def summary(self) -> pd.DataFrame:
        """One row per metric (and label): its value at the deepest layer (at the highest
        frequency, the largest singular value), its standard deviation over images where the
        table keeps one (none for a mean over heads), its standard error (std / sqrt(n); for a
        probe's accuracy the binomial one over its held-out images, as recipe claims use; for a
        mean over heads the mean of the heads' standard errors), and
        the images n behind it (held-out ones for a probe), with the dataset as captions show it
        (spec, split, images, skipped files) and the analysis's own protocol."""
        from vitprobe.analyzers import protocol_of_metric
        from vitprobe.plots.style import value_text

        rows = []
        for result in self.values():
            units = str(result.protocol.get("value_units", ""))
            dataset = result.protocol.get("dataset")
            spec = value_text(dataset) or str(dataset or "")
            for metric, rows_m in result.table.groupby("metric", sort=False):
                rows.extend({"run": self.label, "dataset": spec, **row} for row in _summary_rows(
                    result.name, str(metric), rows_m, protocol_of_metric(result.protocol, str(metric)),
                    metric_units(units, str(metric))))
        return pd.DataFrame(rows, columns=["run", "dataset", "analysis", "metric", "label", "layer", "value",
                                           "std", "se", "units", "n", "protocol"])

    def write_into(self, folder: Path) -> dict[str, str]:
        """Write every result, ``run.json`` and ``report.html`` into an existing folder.

        Returns the SVG text of each figure, by result name.
        """
        from vitprobe.plots.report import run_report

        svgs = {name: result._write_files(folder, self.label) for name, result in self.items()}
        info = {
            "format_version": RUN_FORMAT_VERSION,
            "label": self.label,
            "checkpoint": self.checkpoint,
            "meta": self.meta,
            "results": list(self),
        }
        _write_text(folder / "report.html", run_report(self, svgs))
        _write_text(folder / "run.json", _dump_json(info))
        return svgs

    def save(self, folder: str | os.PathLike[str], overwrite: bool = False) -> Path:
        """Write the run atomically into ``folder`` (refused if it holds something, unless
        ``overwrite``, in which case the old folder is replaced only once the new one is whole);
        the run's ``folder`` is then that one."""
        with atomic_output(folder, overwrite) as tmp:
            self.write_into(tmp)
        self.folder = Path(folder)
        return Path(folder)

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> "Run":
        """Read a run folder written by :meth:`save`."""
        folder = Path(folder)
        info_path = folder / "run.json"
        if not info_path.is_file():
            if folder.is_dir() and any((sub / "run.json").is_file() for sub in folder.iterdir()):
                raise ConfigError(f"{folder}: holds its runs in sub-folders, one per checkpoint (as `vitprobe "
                                  "analyze --out` writes them); load them all with vitprobe.load_runs(folder), "
                                  "or Run.load one sub-folder")
            raise ConfigError(f"{folder}: not a vitprobe run folder (no run.json); pass a folder written by `vitprobe analyze`")
        info = _read_json(info_path, dict)
        version = info.get("format_version")
        if not (isinstance(version, int) and 1 <= version <= RUN_FORMAT_VERSION):
            raise ConfigError(f"{info_path}: format_version {version!r}, and this vitprobe reads "
                              f"1..{RUN_FORMAT_VERSION}; read it with the vitprobe that wrote it, or analyse again")
        names = info.get("results")
        if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
            raise ConfigError(f"{info_path}: 'results' is {names!r}, not the list of analyses vitprobe "
                              f"writes; {_DAMAGED}")
        for name in names:
            if not (folder / f"{name}.csv").is_file():
                raise ConfigError(f"{folder / (name + '.csv')}: missing (run.json lists {name}); {_DAMAGED}")
        results = [Result.load(folder, name) for name in names]
        run = cls(results, info.get("checkpoint"), info.get("label", folder.name), info.get("meta"))
        run.folder = folder
        return run


def metric_units(units: str, metric: str) -> str:
    """The part of an analysis's ``value_units`` ("a: x; b_*: y") that names ``metric``, else all of it."""
    for part in units.split(";"):
        name, sep, unit = part.partition(":")
        name = name.strip()
        if sep and (name == metric or (name.endswith("*") and metric.startswith(name[:-1]))):
            return unit.strip()
    return units


def _summary_rows(analysis: str, metric: str, rows: pd.DataFrame, protocol: dict[str, Any],
                  units: str) -> list[dict]:
    """Reduce one metric to its deepest layer (highest frequency for Fourier curves, the
    largest singular value for spectra, the mean over heads for per-head metrics); the
    protocol column says which frequency or rank, and over how many heads, then the metric's
    ``protocol`` as captions give it (dataset aside; what layer 0 holds only if read there). A
    mean over heads has no std over images (its rows' covariance is not kept) and as its se the
    mean of the heads' (the heads share their images, so their errors are taken as correlated),
    as recipe claims read it."""
    from vitprobe.analyzers.base import protocol_of_layers
    from vitprobe.claims import row_standard_error
    from vitprobe.plots.style import protocol_caption

    at = []
    if "frequency" in rows and rows["frequency"].notna().any():
        rows = rows[rows["frequency"] == rows["frequency"].max()]
        at.append(f"frequency {float(rows['frequency'].iloc[0]):.3g} pi (the highest)")
    layer = pd.NA
    if "layer" in rows and rows["layer"].notna().any():
        layer = rows["layer"].max()
        rows = rows[rows["layer"] == layer]
    caption = protocol_caption([protocol_of_layers(protocol, [] if pd.isna(layer) else [layer])],
                               exclude=("dataset",))
    if "rank" in rows and rows["rank"].notna().any():
        rows = rows[rows["rank"] == rows["rank"].min()]
        at.append("rank 1 (the largest)")
    if "head" in rows and rows["head"].notna().sum() > 1:
        at.append(f"mean over {rows['head'].nunique()} heads (no std over images; se: the mean of the heads' se)")
    caption = " · ".join([*at, caption] if caption else at)
    labels = rows["label"] if "label" in rows else pd.Series([pd.NA] * len(rows), index=rows.index)
    out = []
    for label, group in rows.groupby(labels.fillna(""), sort=False):
        n = group["n"].max() if "n" in group and group["n"].notna().any() else pd.NA
        std = float(group["std"].iloc[0]) if len(group) == 1 and "std" in group else np.nan
        valued = group[group["value"].notna()]  # as the mean of the values, and as claims, leaves NaN rows out
        errors = [row_standard_error({"metric": metric, **row}) for row in valued.to_dict("records")]
        se = None if pd.isna(n) or not errors or any(e is None for e in errors) else sum(errors) / len(errors)
        out.append(
            {"analysis": analysis, "metric": metric, "label": label or "",
             "layer": layer, "value": float(group["value"].mean()), "std": std,
             "se": np.nan if se is None else se, "units": units, "n": n, "protocol": caption}
        )
    return out


def unique_labels(labels: list[str]) -> list[str]:
    """Make labels distinct by suffixing repeats with -2, -3, ..."""
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label}-{seen[label]}")
    return out


def write_comparison(runs: list[Run], folder: Path, links: Mapping[str, str] | None = None,
                     drawn_in: Sequence[Path] | None = None, warned: Sequence[str] = ()) -> list[str]:
    """Into an existing folder, draw every analysis of several runs into one figure each (a
    legend names each checkpoint), write the stacked tables (with a ``run`` column), each
    run's protocol per analysis (``<analysis>.json``: run label -> protocol), ``runs.json``
    and ``report.html``. Returns the run labels, made distinct.

    ``drawn_in`` names, per run, the folder where :meth:`Run.write_into` has just drawn that
    run's own figures: an analysis that only that run has, under its own label, is the same
    figure, and is copied instead of drawn again (half the drawing of a one-checkpoint analyze).
    ``warned`` (what comparing the runs warned of) heads the report."""
    from vitprobe.plots import draw, figure_bytes
    from vitprobe.plots.report import compare_report

    labels = unique_labels([run.label for run in runs])
    renamed = [f"{run.label!r} as {label!r}" for run, label in zip(runs, labels) if label != run.label]
    if renamed:
        warn_user(f"runs share a label, so the comparison shows {abbreviate(renamed, 3)}; give each run its own "
                  "label (analyze --label) to tell them apart")
    names = list(dict.fromkeys(name for run in runs for name in run))
    svgs = {}
    for name in names:
        items = [(label, run[name]) for label, run in zip(labels, runs) if name in run]
        owners = [i for i, run in enumerate(runs) if name in run]
        source = drawn_in[owners[0]] if drawn_in is not None and len(owners) == 1 else None
        if source is not None and labels[owners[0]] == runs[owners[0]].label:
            for fmt in ("png", "svg"):
                shutil.copyfile(source / f"{name}.{fmt}", folder / f"{name}.{fmt}")
        else:
            figure = draw(name, items, check=False)  # compare() warns, once per difference
            for fmt in ("png", "svg"):
                (folder / f"{name}.{fmt}").write_bytes(figure_bytes(figure, fmt))
        svgs[name] = (folder / f"{name}.svg").read_text(encoding="utf-8")
        stacked = pd.concat([r.table.assign(run=label) for label, r in items], ignore_index=True)
        stacked.to_csv(folder / f"{name}.csv", index=False, lineterminator="\n")
        _write_text(folder / f"{name}.json", _dump_json({label: r.protocol for label, r in items}))
    _write_text(folder / "report.html", compare_report(runs, labels, names, svgs, links, warned))
    _write_text(folder / "runs.json", _dump_json([{"label": l, "checkpoint": r.checkpoint} for l, r in zip(labels, runs)]))
    return labels


def _refuse_repeats(runs: Sequence[Run]) -> None:
    """One run given twice (the same object, or the same folder by two paths) is a user error."""
    seen: dict[object, Run] = {}
    for r in runs:
        key = r.folder.resolve() if r.folder is not None else id(r)
        if key in seen:
            where = f"run folder {r.folder}" if r.folder is not None else f"run {r.label!r}"
            raise ConfigError(f"compare: {where} is given twice (directly or inside a folder given); pass each run once")
        seen[key] = r


def _tell_apart_by_folder(runs: Sequence[Run]) -> None:
    """Runs (read from folders here) that share a label get the first part of their folder
    paths that differs: two recipe outputs ``r1/study/runs/simmim`` and ``r2/...`` compare as
    ``SimMIM (r1)`` and ``SimMIM (r2)``, not ``SimMIM`` and ``SimMIM-2``."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.label, []).append(run)
    for label, group in groups.items():
        paths = [r.folder.resolve().parts for r in group if r.folder is not None]
        if len(group) < 2 or len(paths) < len(group) or len(set(paths)) < len(paths):
            continue
        common = len(os.path.commonprefix(paths))
        for run, parts in zip(group, paths):
            run.label = f"{label} ({parts[common] if common < len(parts) else run.folder.name})"


def load_runs(folder: str | os.PathLike[str]) -> list[Run]:
    """The run in ``folder``, or the runs in its sub-folders (an `analyze --out` folder), in the
    order its ``runs.json`` lists them (the order of the checkpoints), others after by name; a
    ``vitprobe reproduce`` recipe folder counts as the runs in its ``runs/``."""
    folder = Path(folder)
    if not folder.exists():
        raise ConfigError(f"{folder}: no such folder; pass folders written by `vitprobe analyze --out`")
    if (folder / "run.json").is_file():
        return [Run.load(folder)]
    if (folder / "runs").is_dir() and not (folder / "runs.json").is_file():
        return load_runs(folder / "runs")
    if folder.is_dir():
        listed = folder / "runs.json"
        order = [str(e.get("label")) for e in _read_json(listed, list) if isinstance(e, dict)] if listed.is_file() else []
        subs = sorted((p for p in folder.iterdir() if (p / "run.json").is_file()),
                      key=lambda p: (order.index(p.name) if p.name in order else len(order), p.name))
        if subs:
            return [Run.load(p) for p in subs]
        if listed.is_file():  # compare's output: the overlaid figures and stacked tables, no run folders
            raise ConfigError(f"{folder}: a comparison (of {abbreviate(order, 4)}), which keeps the overlaid "
                              "figures and tables but not the runs; load the run folders it was made from (runs "
                              "compared from Python: save each first, run.save(folder))")
        recipes = sorted(p.name for p in folder.iterdir() if (p / "runs").is_dir())
        if recipes:  # the --out of vitprobe reproduce: one folder per recipe
            raise ConfigError(f"{folder}: this holds the recipe folders of `vitprobe reproduce` "
                              f"({abbreviate(recipes, 4)}); pass one of them, e.g. {folder / recipes[0]}")
    raise ConfigError(f"{folder}: no run.json here or in its sub-folders; pass folders written by "
                      "`vitprobe analyze --out` or a recipe's folder of `vitprobe reproduce --out`")


def gather_runs(runs: Sequence[Run | str | os.PathLike[str]]) -> list[Run]:
    """The runs that :func:`compare` compares, in order: Run objects as given, and every run in
    each folder (:func:`load_runs`); runs read from folders that share a label are told apart by
    their folders. One run given twice is an error."""
    if isinstance(runs, (Run, str, os.PathLike)):
        raise ConfigError("compare takes a list of runs or run folders, e.g. compare([run_a, run_b], out)")
    if not runs:
        raise ConfigError("compare: no runs given; pass at least one run folder")
    for x in runs:
        if isinstance(x, Result):
            raise ConfigError(f"compare takes runs, and {x!r} is one result; wrap it: Run([result], label='...')")
        if not isinstance(x, (Run, str, os.PathLike)):
            raise ConfigError(f"compare takes runs or run folders, got a {type(x).__name__}")
    loaded = [[x] if isinstance(x, Run) else load_runs(x) for x in runs]
    _tell_apart_by_folder([r for x, group in zip(runs, loaded) if not isinstance(x, Run) for r in group])
    gathered = [r for group in loaded for r in group]
    _refuse_repeats(gathered)
    return gathered


def compare(runs: Sequence[Run | str | os.PathLike[str]], out: str | os.PathLike[str],
            overwrite: bool = False) -> Path:
    """Write a comparison of ``runs`` (Run objects, run folders, or `analyze --out` folders,
    which count as all their runs) atomically into ``out``
    (see :func:`write_comparison`); warns when the runs were analysed on different data, or
    an analysis with different settings."""
    from vitprobe.comparability import warn_if_incomparable

    runs = gather_runs(runs)
    target = Path(out).resolve()
    for run in runs:
        if run.folder is None:
            continue
        if holds(target, run.folder.resolve()):
            raise OutputExistsError(f"{out}: holds the run {run.folder} being compared, which writing the "
                                    "comparison there would delete; choose another --out")
        if holds(run.folder.resolve(), target):
            raise OutputExistsError(f"{out}: is inside the run {run.folder} being compared, which would then hold "
                                    "files it did not write; choose a folder beside it")
    labels = unique_labels([run.label for run in runs])  # as the comparison names them
    with collected_warnings() as warned:  # said, and written at the head of the report
        warn_if_incomparable({name: [(label, run[name].protocol) for label, run in zip(labels, runs) if name in run]
                              for name in dict.fromkeys(n for run in runs for n in run)})
    for text in warned:
        warn_user(text)
    with atomic_output(out, overwrite) as tmp:
        write_comparison(runs, tmp, warned=warned)
    return Path(out)

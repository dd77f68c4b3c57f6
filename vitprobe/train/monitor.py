"""What a training run tells its user: a progress bar, ``log.csv``, divergence and collapse.

``log.csv`` has one row per logged optimiser step: epoch, step (global, 0-based), loss
(mean over processes), lr, wd, momentum, then the objective's other health metrics (each
the mean over processes of every process's value on its own batch); the columns are fixed by
the first row written.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from vitprobe.errors import OutputExistsError, VitprobeError, plural
from vitprobe.output_paths import write_atomically, write_error
from vitprobe.train.checkpointing import save_failed
from vitprobe.progress import progress_bar
from vitprobe.train.collapse import COLLAPSE_KINDS, Collapse

if TYPE_CHECKING:
    from vitprobe.train.config import TrainConfig

BASE_COLUMNS = ["epoch", "step", "loss", "lr", "wd", "momentum"]
LOG_FILE = "log.csv"


class TrainingDivergedError(VitprobeError):
    """The loss became NaN or infinite; the run stopped before touching its checkpoint."""


def check_finite(loss: float, epoch: int, step: int, last_checkpoint: Path | None) -> None:
    """Raise TrainingDivergedError (one line) when ``loss`` is NaN or infinite."""
    if math.isfinite(loss):
        return
    kept = (f"the last checkpoint with a finite loss, {last_checkpoint}, is kept for inspection (--resume "
            "would repeat the same steps)" if last_checkpoint is not None else "no checkpoint was written yet")
    raise TrainingDivergedError(f"loss became {loss} at epoch {epoch} step {step}; {kept}; start a new "
                                "--out with a lower --lr or gradient clipping (--set clip_grad=1.0)")


GROWTH_WARNING = 100.0


def loss_summary(run: str | Path, config: TrainConfig | None = None) -> str:
    """``loss (what it is) on DATA by epoch (mean of logged steps): first -> last over E epochs;
    log: PATH`` for the training run in folder ``run`` (one value where one epoch was logged),
    saying so when fewer than the run's epochs have a logged step (a large --log-every, or
    rows lost); the objective's ``describe_loss`` says what the loss is under the run's
    hyper-parameters, read from ``config`` (default: the run's config.json)."""
    import json

    import pandas as pd

    from vitprobe.train.config import TrainConfig
    from vitprobe.train.objectives import objective_class

    log = Path(run) / LOG_FILE
    if config is None:
        config = TrainConfig.from_overrides(json.loads((Path(run) / "config.json").read_text(encoding="utf-8")))
    method, epochs = config.method, config.total_epochs()
    text = objective_class(method).describe_loss(config.resolved_hparams())
    loss = f"{method} loss" + (f" ({text})" if text else "") + f" on {config.data}"
    by_epoch = pd.read_csv(log).groupby("epoch")["loss"].mean()
    if by_epoch.empty:
        return f"no step was logged; log: {log}"
    span = plural(len(by_epoch), "epoch")
    if len(by_epoch) < epochs:  # every epoch logs a step at --log-every 1: the others' rows were lost
        why = "a smaller --log-every logs more" if config.log_every > 1 else "log.csv lost the others' rows"
        span = f"the {span} of {epochs} with a logged step ({why})"
    if len(by_epoch) == 1:
        return f"{loss}, mean of logged steps: {by_epoch.iloc[0]:.4g} over {span}; log: {log}"
    return (f"{loss} by epoch, mean of logged steps: {by_epoch.iloc[0]:.4g} -> {by_epoch.iloc[-1]:.4g} "
            f"over {span}; log: {log}")


def _is_log_header(columns: list[str]) -> bool:
    return columns[:len(BASE_COLUMNS)] == BASE_COLUMNS


def is_training_log(path: Path) -> bool:
    """Whether ``path`` starts with the header a training log has (``epoch,step,...``)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return _is_log_header(next(csv.reader(f), []))
    except (OSError, UnicodeDecodeError, csv.Error):
        return False


def check_log_replaceable(path: Path, by: str) -> None:
    """Raise OutputExistsError where ``path`` holds something other than a training log or the
    start of one's header (torn by a kill), which ``by`` (a new run, resuming) would replace."""
    if not path.exists() or is_training_log(path):
        return
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            head = f.read(4096)
    except OSError:
        head = "\n"  # unreadable: not known to be a torn header
    if "\n" not in head and ",".join(BASE_COLUMNS).startswith(head):
        return
    raise OutputExistsError(f"{path} is not a vitprobe training log and {by} would replace it; move it "
                            "or choose another --out")


def read_log(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """The columns and complete rows of a training log; a row with missing or extra fields or
    a step that is not a whole number (the last line of a killed run) is left out."""
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.DictReader(f)
        columns = list(reader.fieldnames or [])
        rows = [r for r in reader if None not in r and None not in r.values() and str(r.get("step", "")).isdigit()]
    return columns, rows


def _write_rows(path: Path, columns: list[str], rows: list[dict[str, str]]) -> None:
    """A log file at ``path``: ``columns`` as its header, then ``rows``."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def _record(streaks: dict[str, tuple[int, int]], kind: str, epoch: int) -> int:
    """Add a collapse of ``kind`` at ``epoch`` to ``streaks`` ({kind: (first, last) epoch of
    its current run of consecutive epochs}) and return the first epoch of that run."""
    start, last = streaks.get(kind, (epoch, epoch - 2))
    first = start if last == epoch - 1 else epoch
    streaks[kind] = (first, epoch)
    return first


def _streaks(said: Sequence[str]) -> dict[str, tuple[int, int]]:
    """The streaks (see ``_record``) of collapse warnings recorded as "epoch N: <kind> ..."."""
    streaks: dict[str, tuple[int, int]] = {}
    for text in said:
        epoch, _, rest = text.partition(": ")
        kind = next((k for k in COLLAPSE_KINDS if rest.startswith(k)), None)
        if kind is not None and epoch.removeprefix("epoch ").isdigit():
            _record(streaks, kind, int(epoch.removeprefix("epoch ")))
    return streaks


class Monitor:
    """Progress bar, CSV log and per-epoch collapse warnings; silent where ``enabled`` is False
    (ranks other than 0), without the bar where ``progress`` is False.

    A collapse is warned of with its advice the first epoch it shows, and in one short line
    each following epoch while it persists (``said``: the warnings of the epochs before a
    resume, "epoch N: text"); one that comes back after a calm epoch is advised on again.

    A fresh run (``start_step`` 0) starts a new log. ``start_step`` > 0 (a resumed run) keeps
    the rows of the steps before it from the existing log, rewritten atomically (rows torn by a
    kill are dropped; a log whose header is torn starts afresh), so the log of a resumed run
    equals that of an uninterrupted one.
    """

    def __init__(self, out: Path, enabled: bool, total_steps: int, start_step: int,
                 log_every: int, warn: Callable[[dict[str, float]], list[Collapse]], progress: bool = True,
                 said: Sequence[str] = ()):
        self.enabled, self.log_every, self.warn = enabled, log_every, warn
        self.streaks = _streaks(said)
        self.path = out / LOG_FILE
        self.columns: list[str] | None = None
        self.epoch_sums: dict[str, float] = defaultdict(float)
        self.epoch_count = 0
        self.first_loss: float | None = None  # of this process's first step; a growth warning is said once
        self.said_growth = False
        self.bar = progress_bar(total=total_steps, initial=start_step, disable=not (enabled and progress),
                                unit="step", dynamic_ncols=True)
        if enabled and start_step > 0:
            self._keep_rows_before(start_step)

    def _keep_rows_before(self, start_step: int) -> None:
        if not self.path.exists():
            return
        columns, rows = read_log(self.path)
        if not _is_log_header(columns):  # a header torn by a kill: the log starts afresh
            self.path.unlink()
            return
        self.columns = columns
        kept = [r for r in rows if int(r["step"]) < start_step]
        write_atomically(self.path, lambda tmp: _write_rows(tmp, columns, kept))

    def step(self, epoch: int, step: int, loss: float, lr: float, wd: float,
             momentum: float | None, metrics: dict[str, float]) -> None:
        """Record one optimiser step."""
        for key, value in metrics.items():
            self.epoch_sums[key] += float(value)
        self.epoch_count += 1
        self._check_growth(step, loss)
        if not self.enabled:
            return
        self.bar.set_postfix(epoch=epoch, loss=f"{loss:.4g}", lr=f"{lr:.3g}", refresh=False)
        self.bar.update(1)  # shows this step's postfix
        if step % self.log_every:
            return
        row: dict[str, Any] = {**metrics, "epoch": epoch, "step": step, "loss": loss, "lr": lr,
                               "wd": wd, "momentum": "" if momentum is None else momentum}
        new_file = self.columns is None
        if new_file:
            self.columns = BASE_COLUMNS + sorted(set(metrics) - set(BASE_COLUMNS))
        try:
            with open(self.path, "a" if not new_file else "w", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore")
                if new_file:
                    writer.writeheader()
                writer.writerow(row)
        except OSError as err:  # a row torn here is dropped by --resume
            raise save_failed(self.path.parent, LOG_FILE, write_error(self.path, err)) from None

    def _check_growth(self, step: int, loss: float) -> None:
        """Warn once when the loss exceeds GROWTH_WARNING times its first value: every built-in
        loss starts near its largest (log K, InfoNCE at chance, unfitted pixels), so such growth
        means divergence long before the loss becomes NaN."""
        if self.first_loss is None:
            self.first_loss = loss
        elif not self.said_growth and self.first_loss > 0 and loss > GROWTH_WARNING * self.first_loss:
            self.said_growth = True
            if self.enabled:
                self.bar.write(f"vitprobe: warning: step {step}: loss {loss:.3g} is over {GROWTH_WARNING:g}x "
                               f"its first value {self.first_loss:.3g}; the run is diverging: stop it and "
                               "start a new --out with a lower --lr or --set clip_grad=1.0")

    def end_epoch(self, epoch: int) -> list[str]:
        """Print (on rank 0) and return the collapse warnings of the epoch's mean metrics: with
        the advice where the collapse starts, else ``Collapse.persisting``'s short line."""
        means = {k: v / max(self.epoch_count, 1) for k, v in self.epoch_sums.items()}
        self.epoch_sums.clear()
        self.epoch_count = 0
        warnings = []
        for collapse in self.warn(means):
            first = _record(self.streaks, collapse.kind, epoch)
            warnings.append(str(collapse) if first == epoch else collapse.persisting(first))
        if self.enabled:
            for text in warnings:
                self.bar.write(f"vitprobe: warning: epoch {epoch}: {text}")
        return warnings

    def close(self) -> None:
        """Close the progress bar."""
        self.bar.close()

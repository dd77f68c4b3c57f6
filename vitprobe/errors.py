"""User-facing errors and warnings: one line that names the file (or spec) and says what to do."""

from __future__ import annotations

import errno
import numbers
import os
import re
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

_PACKAGE = os.path.join(str(Path(__file__).resolve().parent), "")  # with the trailing separator
_WORKER_HEADER = re.compile(r"Caught \w+ in DataLoader worker process \d+\.?$")


class VitprobeError(Exception):
    """Base of every error caused by the user's input; the CLI prints it and exits 2.

    Re-raised by torch's DataLoader from a worker process, the error arrives with the worker's
    whole traceback as its message; it keeps only the worker's own one-line message.
    """

    def __init__(self, *args: object) -> None:
        if len(args) == 1 and isinstance(args[0], str):
            args = (_worker_message(args[0]),)
        super().__init__(*args)


def _worker_message(text: str) -> str:
    """The original message inside torch's ``Caught <Error> in DataLoader worker process N.``
    text (its traceback's last line is ``<module>.<Error>: <message>``); other text unchanged."""
    lines = text.strip().splitlines()
    if len(lines) < 2 or not _WORKER_HEADER.match(lines[0]):
        return text
    return lines[-1].split(": ", 1)[-1]


class CheckpointError(VitprobeError):
    """A checkpoint file cannot be read, is unsafe, or does not fit the architecture."""


class DataError(VitprobeError):
    """A dataset spec or a data folder cannot be used."""


class ConfigError(VitprobeError):
    """A command-line option, recipe or training config is invalid."""


class CaptureError(VitprobeError):
    """A requested capture site did not fire during the forward pass."""


class AnalyzerDefinitionError(TypeError):
    """An analyzer class that cannot be registered or built as written (a programming error in
    it, such as a parameter without a default); its message is whole and says the fix."""


class OutputExistsError(VitprobeError):
    """The output directory already holds a run and --overwrite was not given."""


class OutputWriteError(VitprobeError):
    """A file or folder of vitprobe's output could not be written (disk full, no permission):
    "cannot write {where} ({reason}); [{note}; ]{remedy}, or choose another --out", the remedy
    following the error number ``code``."""

    def __init__(self, where: str, reason: str, code: int | None, note: str = "") -> None:
        self.where, self.reason, self.code, self.note = where, reason, code, note
        super().__init__(f"cannot write {where} ({reason}); {note + '; ' if note else ''}{self.remedy}, "
                         "or choose another --out")

    def __reduce__(self) -> tuple[type, tuple[str, str, int | None, str]]:  # pickled by its parts
        return type(self), (self.where, self.reason, self.code, self.note)

    @property
    def remedy(self) -> str:
        """What to do about it in place: free space, make the folder writable, or check it."""
        if self.code in (errno.ENOSPC, errno.EDQUOT):
            return "free some space on its disk"
        if self.code in (errno.EACCES, errno.EPERM, errno.EROFS):
            return "make its folder writable"
        return "check its folder"


def is_whole(value: object) -> bool:
    """True for an integer, Python's or NumPy's, but not a bool: what a count, size or seed takes."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value: object) -> bool:
    """True for a real number (an int or float, Python's or NumPy's; NaN and inf included), but
    not a bool: what a rate, ratio or threshold takes before its range is checked."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_whole(value: object, what: str, minimum: int = 1, error: type[VitprobeError] = ConfigError,
                hint: str = "") -> int:
    """``int(value)`` when ``value`` is a whole number >= ``minimum``; otherwise ``error`` saying
    "{what} must be a whole number >= {minimum}, got {value!r}" (then "; {hint}" if given)."""
    if not is_whole(value) or value < minimum:  # type: ignore[operator]
        raise error(f"{what} must be a whole number >= {minimum}, got {value!r}" + (f"; {hint}" if hint else ""))
    return int(value)  # type: ignore[call-overload]


def plural(count: int, noun: str) -> str:
    """``1 epoch``, ``2 epochs``: a count with its noun (plural by a trailing s)."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def abbreviate(items: Sequence[str], limit: int = 6, sep: str = ", ") -> str:
    """``a, b, c, ... (+N more)``: a readable one-line list of the first ``limit`` items (an
    item with a control character as its repr)."""
    shown = sep.join(item if item.isprintable() else repr(item) for item in items[:limit])
    return shown + (f"{sep}... (+{len(items) - limit} more)" if len(items) > limit else "")


def brief_reason(err: BaseException, limit: int = 160) -> str:
    """A library's error message for a one-line error: whitespace collapsed, its first
    sentence only, and cut at a word boundary (with "...") if longer than ``limit``."""
    text = " ".join(str(err).split())
    first = text.split(". ", 1)[0].rstrip(".")
    if len(first) > limit:
        first = first[:limit].rsplit(" ", 1)[0] + "..."
    return first or type(err).__name__


class VitprobeWarning(UserWarning):
    """A warning about the user's input or results (the CLI prints it as one line)."""


def warn_user(message: str) -> None:
    """``warnings.warn(message, VitprobeWarning)`` attributed to the caller of vitprobe's outermost
    frame (the user's notebook cell or script), not to the line of vitprobe that noticed."""
    frame, level, outermost = sys._getframe(1), 2, 2  # level 2 is warn_user's caller
    while frame is not None:
        if os.path.realpath(frame.f_code.co_filename).startswith(_PACKAGE):
            outermost = level
        frame, level = frame.f_back, level + 1
    warnings.warn(message, VitprobeWarning, stacklevel=outermost + 1)


@contextmanager
def collected_warnings() -> Iterator[list[str]]:
    """Collect the texts of the VitprobeWarnings said inside (each once) into the yielded
    list instead of saying them; other warnings pass as they were, also after an error."""
    said: list[str] = []
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as recorded:
            warnings.simplefilter("always", VitprobeWarning)
            caught = recorded
            yield said
    finally:
        for w in caught:
            if not issubclass(w.category, VitprobeWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        said.extend(dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, VitprobeWarning)))


def warn_labelled(said_by: dict[str, list[str]]) -> None:
    """Say each run's warnings prefixed by its label (``said_by``: label -> texts); among
    several runs, a text that every run said is said once, unprefixed (it is about what they
    share: the data, the settings)."""
    shared = set.intersection(*map(set, said_by.values())) if len(said_by) > 1 else set()
    for text in [t for t in next(iter(said_by.values()), []) if t in shared]:
        warn_user(text)
    for label, said in said_by.items():
        for text in said:
            if text not in shared:
                warn_user(f"{label}: {text}")


@contextmanager
def warnings_kept(label: str | None = None) -> Iterator[list[str]]:
    """``collected_warnings``, said again on leaving (an error too), prefixed by ``label`` if
    given: the list keeps them for a record, and where several models warn alike, the label
    says whose each is."""
    said: list[str] = []
    try:
        with collected_warnings() as said:
            yield said
    finally:
        if label is None:
            for text in said:
                warn_user(text)
        else:
            warn_labelled({label: said})


@contextmanager
def errors_naming(prefix: str, name: str | None = None) -> Iterator[None]:
    """Re-raise a VitprobeError from inside as ``<prefix>: <message>`` (same type) unless its
    message already holds ``name`` (default: the prefix): which of several inputs it is about."""
    try:
        yield
    except VitprobeError as err:
        if (prefix if name is None else name) in str(err):
            raise
        raise type(err)(f"{prefix}: {err}") from None

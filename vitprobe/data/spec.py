"""Dataset spec strings: ``synthetic[:N[:seed]]``, ``digits``, ``folder:PATH``, ``voc:PATH[:split]``."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from vitprobe.errors import DataError

ACCEPTED_FORMS = "synthetic[:N[:seed]], digits, folder:PATH, voc:PATH[:split]"
DEFAULT_SYNTHETIC_SIZE = 512
MAX_SYNTHETIC_SIZE = 10**9
MAX_SEED = 2**63 - 1

_DIGITS = re.compile(r"[0-9]+")
SPLIT_NAME = re.compile(r"[A-Za-z0-9_-]+")  # what a split may be called (VOC's ImageSets/Segmentation/NAME.txt)


@dataclass(frozen=True)
class DataSpec:
    """A parsed dataset spec; ``text`` is the spec as recorded: the string the user gave, its
    kind in lower case and without surrounding spaces (``Synthetic:64 `` -> ``synthetic:64``)."""

    kind: str
    text: str
    n: int | None = None
    seed: int = 0
    path: Path | None = None
    split: str | None = None


def spec_error(spec: str, problem: str) -> DataError:
    """A one-line DataError that names the spec, the problem and the accepted forms."""
    return DataError(f"dataset spec {spec!r}: {problem}; accepted forms: {ACCEPTED_FORMS}")


def _parse_int(spec: str, text: str, what: str, low: int, high: int) -> int:
    if not _DIGITS.fullmatch(text):
        raise spec_error(spec, f"{what} must be a whole number in {low}..{high}, got {text!r}")
    value = int(text)
    if not low <= value <= high:
        raise spec_error(spec, f"{what} must lie in {low}..{high}, got {value}")
    return value


def _parse_synthetic(spec: str, recorded: str, args: list[str]) -> DataSpec:
    if len(args) > 2:
        raise spec_error(spec, "synthetic takes at most N and a seed")
    n = DEFAULT_SYNTHETIC_SIZE
    seed = 0
    if args:
        n = _parse_int(spec, args[0], "N (number of images)", 1, MAX_SYNTHETIC_SIZE)
    if len(args) == 2:
        seed = _parse_int(spec, args[1], "seed", 0, MAX_SEED)
    return DataSpec("synthetic", recorded, n=n, seed=seed)


def _parse_path(spec: str, text: str) -> Path:
    if not text.strip():
        raise spec_error(spec, "the path is empty")
    if "\x00" in text:
        raise spec_error(spec, "the path contains a NUL character")
    return _expand_home(spec, text)


def _expand_home(spec: str, text: str) -> Path:
    """``Path(text)`` with a leading ``~`` or ``~user`` expanded as the shell would."""
    try:
        return Path(text).expanduser()
    except (RuntimeError, UnicodeError):  # ~user names no user here, or no name the system can encode
        user = text.split("/", 1)[0]
        raise spec_error(spec, f"cannot expand {user!r}: no such home directory here; write the full path") from None


def _names_folder(path: str, instead_of: str) -> bool:
    """Whether ``path`` is an existing folder while ``instead_of`` does not exist (a colon that
    belongs to a folder's name, not a split)."""
    try:
        return Path(path).expanduser().is_dir() and not Path(instead_of).expanduser().exists()
    except (OSError, RuntimeError, ValueError):
        return False


def parse_spec(spec: str) -> DataSpec:
    """Parse a dataset spec string; raise DataError (one line) for anything else.

    ``synthetic`` alone means ``synthetic:512:0``. In ``voc:PATH:split`` the part after the
    last colon is taken as the split when it is a plain name (letters, digits, ``_``, ``-``),
    unless the whole rest names an existing folder and the part before the colon does not;
    otherwise the whole rest is the path and the split defaults to ``val`` when resolved. An
    existing folder before the last colon, followed by no plain name, is a DataError.
    """
    if not isinstance(spec, str):
        raise DataError(f"dataset spec must be a string, got {type(spec).__name__}; "
                        f"accepted forms: {ACCEPTED_FORMS}")
    text = spec.strip()
    kind, sep, rest = text.partition(":")
    kind = kind.lower()
    recorded = f"{kind}{sep}{rest}"
    if kind == "synthetic":
        return _parse_synthetic(spec, recorded, rest.split(":") if sep else [])
    if kind == "digits":
        if sep:
            raise spec_error(spec, "digits takes no arguments")
        return DataSpec("digits", recorded)
    if kind == "folder":
        return DataSpec("folder", recorded, path=_parse_path(spec, rest))
    if kind == "voc":
        head, colon, tail = rest.rpartition(":")
        if colon and head and SPLIT_NAME.fullmatch(tail) and not _names_folder(rest, instead_of=head):
            folder, _, extra = head.rpartition(":")
            if folder and _names_folder(folder, instead_of=head):  # voc:ROOT:a:b, two names after the folder
                raise DataError(f"dataset {spec!r}: a VOC spec takes one split after its folder, voc:PATH[:split], "
                                f"and {folder} is followed by {extra!r} and {tail!r}; use e.g. voc:{folder}:{tail}")
            return DataSpec("voc", recorded, path=_parse_path(spec, head), split=tail)
        if colon and head and _names_folder(head, instead_of=rest):  # a folder, then no plain split name
            raise DataError(f"dataset {spec!r}: split {tail!r} is not a plain name (letters, digits, _ and -); "
                            f"use e.g. voc:{head}:train or voc:{head}:val")
        return DataSpec("voc", recorded, path=_parse_path(spec, rest))
    try:
        folder = Path(os.path.expanduser(text))  # unchanged when ~user names no user
    except UnicodeError:  # a name the system cannot encode is no folder here
        folder = None
    if text and folder is not None and folder.is_dir():  # a bare path: say which spec names it
        from vitprobe.data.voc import looks_like_voc

        raise spec_error(spec, f"this is a folder; name its kind, e.g. "
                               f"{'voc' if looks_like_voc(folder) else 'folder'}:{text}")
    raise spec_error(spec, f"unknown dataset kind {kind!r}")



def _relative(spec: str) -> DataSpec | None:
    """The parsed ``spec`` when it names a folder by a relative path, else None."""
    try:
        parsed = parse_spec(spec)
    except DataError:
        return None
    return None if parsed.path is None or parsed.path.expanduser().is_absolute() else parsed


def relative_path_note(spec: str) -> str:
    """``" (relative paths in a data spec are read from <cwd>)"`` when ``spec`` names a relative
    folder, else ``""``: what a recipe's data error adds, since its other paths are read from
    the recipe's folder."""
    if _relative(spec) is None:
        return ""
    return f" (relative paths in a data spec are read from the folder vitprobe runs in, {os.getcwd()})"


def absolute_spec(spec: str) -> str:
    """``spec`` with a relative folder made absolute (``folder:imgs`` -> ``folder:/home/me/imgs``),
    so that a record of it names the same data from any working folder; other specs, and text
    that is no spec, unchanged."""
    parsed = _relative(spec)
    if parsed is None:
        return spec
    return f"{parsed.kind}:{os.path.abspath(parsed.path)}" + (f":{parsed.split}" if parsed.split else "")

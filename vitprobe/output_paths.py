"""Where vitprobe writes: checks on an output path before any work, temp files beside it, and
the analysis side's folder policy (what an ``--out`` may hold, what ``--overwrite`` may
replace, and the atomic swap of a finished folder into place).

Outputs are written to a temp file or folder next to their final path and renamed into place.
``tempfile`` makes those private (mode 600 / 700); they are given the permissions a plainly
created file or folder would get under the process umask, so that colleagues on shared
storage can read checkpoints and reports. Temp names carry the host and process id
(``.<name>.partial-<host>+<pid>+<random>``), so that what a killed process left behind is
named in a warning the next time the same output is written from that host.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import tempfile
import uuid
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

from vitprobe.errors import OutputExistsError, OutputWriteError, abbreviate, warn_user


# Files that mark a folder as written by vitprobe's analysis side (a run, a comparison).
ANALYSIS_MARKERS = ("run.json", "runs.json")


# Files a file browser leaves in any folder it shows (macOS Finder, Windows Explorer): not the
# user's content, so they neither make a folder "not empty" nor stop an --overwrite.
BROWSER_FILES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})


# The prefix of the empty folder made and removed at once to test that a folder is writable:
# another process of the same command (a torchrun rank) may see it for that instant.
WRITE_CHECK_PREFIX = ".vitprobe-write-check-"


def user_entries(folder: Path) -> list[Path]:
    """The entries of ``folder``, less the files a file browser left there (``BROWSER_FILES``)
    and the write checks of processes testing it (``WRITE_CHECK_PREFIX``)."""
    return [entry for entry in folder.iterdir()
            if entry.name not in BROWSER_FILES and not entry.name.startswith(WRITE_CHECK_PREFIX)]


def is_analysis_output(folder: Path) -> bool:
    """Whether ``folder`` holds a run or comparison marker (``run.json``, ``runs.json``)."""
    return any((folder / marker).is_file() for marker in ANALYSIS_MARKERS)


def holds(folder: Path, path: Path) -> bool:
    """Whether ``folder`` is ``path`` or one of its ancestors (both taken as given: resolve
    them first where links matter)."""
    return folder == path or folder in path.parents


def _check_writable(path: Path, folder: Path) -> None:
    """Refuse ``path`` when this process cannot create entries in the existing ``folder``:
    asked of the OS, then tried with an empty folder made and removed (root is "allowed" to
    write in /sys or /proc, where nothing can be made)."""
    problem = "no permission, or a read-only file system"
    writable = os.access(folder, os.W_OK | os.X_OK)
    if writable:
        try:
            os.rmdir(tempfile.mkdtemp(dir=folder, prefix=WRITE_CHECK_PREFIX))
        except OSError as err:
            writable, problem = False, err.strerror or type(err).__name__
    if not writable:
        raise OutputExistsError(f"{path}: cannot write in {folder} ({problem}); choose another --out")


def check_parent_folders(path: str | os.PathLike[str]) -> Path:
    """Refuse ``path`` when its nearest existing ancestor is not a folder this process can
    write in (``path`` and its temp sibling could never be made)."""
    path = Path(path)
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputExistsError(f"{path}: {parent} is a file, not a folder; choose another --out")
            _check_writable(path, parent)
            break
    return path


def check_output_folder(path: str | os.PathLike[str]) -> Path:
    """Refuse a folder path that names an existing file, lies under one, or where (or inside
    which, if it exists) this process cannot write."""
    path = check_parent_folders(path)
    if path.exists() and not path.is_dir():
        raise OutputExistsError(f"{path}: exists and is not a folder; choose another --out")
    if path.is_dir():
        _check_writable(path, path)
    return path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


_TEMP_KINDS = ("partial", "old", "tmp")  # a folder being written, one being replaced, a file


def temp_prefix(path: Path, kind: str) -> str:
    """``.<name>.<kind>-<host>+<pid>+`` for a temp sibling of ``path``; first warns about the
    temp siblings of ``path`` that a process of this host, no longer running, left behind
    (deleting them is left to the user: a pid can be reused, and a host name shared)."""
    host = socket.gethostname()
    prefixes = tuple(f".{path.name}.{k}-{host}+" for k in _TEMP_KINDS)
    left = []
    if os.name == "posix" and path.parent.is_dir():
        for entry in path.parent.iterdir():
            mine = next((p for p in prefixes if entry.name.startswith(p)), None)
            pid = entry.name[len(mine):].split("+", 1)[0] if mine else ""
            if pid.isdigit() and not _is_running(int(pid)):
                left.append(entry.name)
    if left:
        old = " (the .old one holds the previous output)" if any(name.startswith(f".{path.name}.old-") for name in left) else ""
        warn_user(f"{path.parent}: {', '.join(sorted(left))} left by an interrupted run of {path.name}"
                  f"{old}; delete them once nothing in them is needed")
    return f".{path.name}.{kind}-{host}+{os.getpid()}+"


def fsync_path(path: Path) -> None:
    """Flush a file's (or a folder's) contents to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, write: Callable[[Path], object], *, durable: bool = False) -> Path:
    """``write(tmp)`` into an empty temp file beside ``path`` (its folder made if missing; the
    same suffix, so that writers which append a missing one, such as ``numpy.savez``, keep the
    name), give it mode ``0o666 & ~umask`` (writers may have recreated it) and rename it to
    ``path``: the file is its previous self or complete, never part-written, and a write that
    fails leaves no temp file; one that fails for the file system (disk full, no permission)
    raises OutputWriteError. ``durable`` also fsyncs the file before the rename and its folder
    after it (a checkpoint that must survive a power cut). Returns ``path``."""
    make_folder(path.parent)
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path, "tmp"), suffix=path.suffix)
        os.close(fd)
    except OSError as err:
        raise write_error(path, err) from None
    tmp = Path(name)
    try:
        write(tmp)
        if durable:
            fsync_path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
        if durable:
            fsync_path(path.parent)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        failure = write_failure(err)
        if failure is None:
            raise
        raise OutputWriteError(str(path), *failure) from None
    return path


def make_folder(path: Path) -> Path:
    """``path`` made as a folder (with its parents; one already there is kept); where the file
    system refuses, OutputWriteError."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise write_error(path, err) from None
    return path


def _os_failure(err: OSError) -> tuple[str, int | None]:
    """``(reason, error number)`` of an OSError."""
    return (os.strerror(err.errno) if err.errno else str(err)), err.errno


def write_error(path: Path, err: OSError) -> OutputWriteError:
    """The OutputWriteError of an OSError met while writing ``path``."""
    return OutputWriteError(str(path), *_os_failure(err))


def write_torch(obj: object, path: Path, *, durable: bool = False) -> Path:
    """``torch.save(obj)`` to ``path`` by :func:`write_atomically`, into a file Python opened, so
    that a file system's failure arrives as its OSError (torch's own file writer says only
    "iostream error")."""
    import torch

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as file:
            torch.save(obj, file)

    return write_atomically(path, write, durable=durable)


def write_failure(err: BaseException) -> tuple[str, int | None] | None:
    """``(reason, error number)`` of an error the file system raised while writing: an OSError
    (or another error raised while handling one, as torch's writer does), or safetensors' own
    error around one (its "(os error N)"); None for any other error, and for a Ctrl-C or an exit
    (never turned into an error of the output, whatever they interrupted)."""
    if not isinstance(err, Exception):
        return None
    cause: BaseException | None = err
    while cause is not None and not isinstance(cause, OSError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, OSError):
        return _os_failure(cause)
    if type(err).__name__ == "SafetensorError":  # safetensors' writer wraps the OSError in its own
        found = re.search(r"\(os error (\d+)\)", str(err))
        code = int(found.group(1)) if found else None
        return (os.strerror(code) if code else str(err).splitlines()[0]), code
    return None


def temp_folder_beside(path: Path) -> Path:
    """An empty temp folder in ``path``'s folder (created if missing), mode ``0o777 & ~umask``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(path, "partial"), dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    return tmp


# The suffixes of the files an analysis output holds beside its run folders (report.html aside).
RESULT_SUFFIXES = (".csv", ".json", ".png", ".svg", ".npz")


def _recorded_results(folder: Path) -> set[str]:
    """The result names that the ``run.json`` of ``folder`` and of its sub-folders list
    (unreadable ones list none)."""
    names: set[str] = set()
    for info in [folder / "run.json", *folder.glob("*/run.json")]:
        try:
            listed = json.loads(info.read_text(encoding="utf-8")).get("results", [])
        except (OSError, ValueError, AttributeError):
            continue
        names.update(name for name in listed if isinstance(name, str))
    return names


def foreign_entries(folder: Path, own: Collection[str] = ()) -> list[str]:
    """Paths under an analysis output ``folder`` that vitprobe's analysis side does not write:
    anything but ``run.json``, ``runs.json``, ``report.html``, ``<analysis>.csv/.json/.png/
    .svg/.npz`` (an analysis registered now, or named in the ``run.json`` of the folder or of
    its sub-folders: a custom analysis of an earlier session), the file names in ``own`` (a
    caller's extra files, top level only) and sub-folders that are analysis outputs themselves
    (checked the same way)."""
    from vitprobe.analyzers import list_analyzers

    analyses = set(list_analyzers()) | _recorded_results(folder)
    found = []
    for entry in sorted(user_entries(folder)):
        if entry.is_dir() and not entry.is_symlink():
            if is_analysis_output(entry):
                found += [f"{entry.name}/{inner}" for inner in foreign_entries(entry)]
            else:
                found.append(f"{entry.name}/")
        elif not (entry.name in (*ANALYSIS_MARKERS, "report.html", *own)
                  or (entry.suffix in RESULT_SUFFIXES and entry.stem in analyses)):
            found.append(entry.name)
    return found


def check_output(out: str | os.PathLike[str], overwrite: bool) -> Path:
    """Refuse an output folder that already holds something, unless ``overwrite`` and it is an
    analysis output holding nothing else (``--overwrite`` never replaces anything else, such as
    a training run, a folder of images, or notes a user put beside the results). The working
    folder, or one that holds it, is refused: the output is written beside it and renamed into
    its place."""
    here, target = Path.cwd(), Path(os.path.abspath(out))
    if holds(target, here):
        raise OutputExistsError(f"{out or '.'}: is the folder you are working in{'' if target == here else ' or holds it'}, "
                                "which vitprobe would replace as a whole; name a folder below it (e.g. --out results)")
    out = check_output_folder(out)
    if out.is_dir() and user_entries(out):
        if not overwrite:
            raise OutputExistsError(f"{out}: folder exists and is not empty; pass --overwrite (Python: overwrite=True) or choose another --out")
        if not is_analysis_output(out):
            raise OutputExistsError(
                f"{out}: not an analysis output (no {' or '.join(ANALYSIS_MARKERS)}), so --overwrite "
                "will not replace it; choose another --out")
        foreign = foreign_entries(out)
        if foreign:
            raise OutputExistsError(
                f"{out}: holds files vitprobe did not write ({abbreviate(foreign, 3)}), which --overwrite would "
                "delete; move them out or choose another --out")
    return out


@contextmanager
def atomic_output(out: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces ``out`` in one rename.

    On an exception the temporary folder is removed and ``out`` is left as it was. An old
    ``out`` (only with ``overwrite``) is moved aside and deleted after the new one is in place.
    """
    out = check_output(out, overwrite)
    try:
        tmp = temp_folder_beside(out)
    except OSError as err:
        raise write_error(out, err) from None
    try:
        yield tmp
        check_output(out, overwrite)
    except OutputWriteError as err:  # named by the output, not the temp folder that is removed
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputWriteError(str(out), err.reason, err.code,
                               "the folder there is left as it was" if out.exists() else "") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        old = out.with_name(f"{temp_prefix(out, 'old')}{uuid.uuid4().hex[:8]}")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)

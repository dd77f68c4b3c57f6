"""One writer per training folder: an advisory lock on ``<out>/.lock`` while a run trains there.

Two trainings on one ``--out`` (a second terminal, a resume started while the first still
runs) would overwrite each other's checkpoints and leave a pair of two different steps. The
process that trains into a folder (rank 0 under torchrun) holds ``flock(LOCK_EX)`` on its lock
file; a second one fails at once with a one-line error naming the holder's process id. The
operating system releases the lock when the holder exits, killed or not, so no stale lock is
ever left to clear by hand. Where ``fcntl`` does not exist (Windows) no lock is taken.
"""

from __future__ import annotations

import os
from pathlib import Path

from vitprobe.errors import OutputExistsError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".lock"


class RunLock:
    """The lock on one run folder, taken by :meth:`acquire` and held until :meth:`release`."""

    def __init__(self) -> None:
        self._fd: int | None = None

    def acquire(self, out: Path) -> None:
        """Hold the lock on ``out`` (an existing folder), or raise OutputExistsError if another
        process holds it; a no-op once held."""
        if self._fd is not None or fcntl is None:
            return
        fd = os.open(out / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _pid_in(fd)
            os.close(fd)
            raise busy_error(out, holder) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        self._fd = fd

    def release(self) -> None:
        """Let the lock go (closing the file releases it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _pid_in(fd: int) -> str:
    return os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"


def busy_error(out: Path, holder: str) -> OutputExistsError:
    """The error for a folder that process ``holder`` is training into."""
    return OutputExistsError(f"{out}: another process (pid {holder}) is training into this folder; "
                             "wait for it to end (then --resume) or choose another --out")


def lock_holder(out: Path) -> str | None:
    """The process id of the process training into ``out`` (holding its lock), or None;
    only reads (no lock file is made)."""
    if fcntl is None:
        return None
    try:
        fd = os.open(out / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    except BlockingIOError:
        return _pid_in(fd)
    finally:
        os.close(fd)

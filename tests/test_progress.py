"""The progress bar falls back to text where the notebook widget cannot be drawn."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import io
import sys
import time
import types
import warnings

import pytest
import tqdm
import tqdm.auto

import vitprobe.progress


def test_text_bar_without_ipywidgets(monkeypatch) -> None:
    """tqdm.auto would pick the notebook widget and warn "IProgress not found" there."""
    monkeypatch.setattr(vitprobe.progress, "find_spec", lambda name: None)
    assert vitprobe.progress.progress_bar_class() is tqdm.tqdm


def test_auto_bar_where_ipywidgets_is_installed(monkeypatch) -> None:
    monkeypatch.setattr(vitprobe.progress, "find_spec", lambda name: object())
    assert vitprobe.progress.progress_bar_class() is tqdm.auto.tqdm


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_in_a_file_is_redrawn_rarely_and_in_a_terminal_often(monkeypatch) -> None:
    """Where stderr is a file (a batch job's log) the bar is not redrawn ten times a second."""
    monkeypatch.setattr(vitprobe.progress, "find_spec", lambda name: None)
    written = {}
    for name, stream in (("file", io.StringIO()), ("terminal", _Terminal())):
        monkeypatch.setattr(sys, "stderr", stream)
        for _ in vitprobe.progress.progress_bar(range(40)):
            time.sleep(0.02)
        written[name] = stream.getvalue().count("\r")
    assert written["file"] <= 3 < written["terminal"]  # the first draw, the last, and no more
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    bar = vitprobe.progress.progress_bar(range(2))  # tqdm's monitor forces a redraw after maxinterval
    assert bar.mininterval == bar.maxinterval == vitprobe.progress.FILE_INTERVAL_S
    bar.close()
    for stream, kept in ((io.StringIO(), True), (_Terminal(), False)):  # analyze's bar goes once done, but a log keeps it
        monkeypatch.setattr(sys, "stderr", stream)
        list(vitprobe.progress.progress_bar(range(4), desc="analysing m", leave=False))
        last = stream.getvalue().split("\r")[-1]
        if kept:
            assert last.startswith("analysing m: 100%") and last.endswith("\n")
        else:
            assert not last.strip()  # blanked in place


class _KernelStream(io.StringIO):
    """Where a Jupyter kernel sends stderr: no terminal, but it redraws a bar in place."""


_KernelStream.__module__ = "ipykernel.iostream"


def test_a_jupyter_kernels_output_redraws_in_place_and_a_closed_stderr_draws_nothing(monkeypatch) -> None:
    assert vitprobe.progress.redraws_in_place(_KernelStream())
    assert not vitprobe.progress.redraws_in_place(io.StringIO())
    monkeypatch.setattr(vitprobe.progress, "find_spec", lambda name: None)
    monkeypatch.setattr(sys, "stderr", None)  # started with 2>&-
    bar = vitprobe.progress.progress_bar(range(3))
    assert bar.disable and list(bar) == [0, 1, 2]


def test_a_closed_or_bare_stream_does_not_redraw_and_the_callers_settings_are_kept(monkeypatch) -> None:
    closed = io.StringIO()
    closed.close()  # isatty raises ValueError
    assert not vitprobe.progress.redraws_in_place(closed)
    assert not vitprobe.progress.redraws_in_place(object())  # no isatty at all
    monkeypatch.setattr(vitprobe.progress, "find_spec", lambda name: None)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    bar = vitprobe.progress.progress_bar(range(2), disable=True)
    assert bar.disable and list(bar) == [0, 1]
    bar = vitprobe.progress.progress_bar(range(2), mininterval=5.0)  # a caller's own interval wins
    assert bar.mininterval == 5.0 and bar.maxinterval == vitprobe.progress.FILE_INTERVAL_S
    bar.close()


class _WarningTqdmAuto(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Stands in for tqdm.auto in a kernel without ipywidgets: importing it warns, and is counted."""

    def __init__(self) -> None:
        self.imported = 0

    def find_spec(self, name, path=None, target=None):
        return importlib.util.spec_from_loader(name, self) if name == "tqdm.auto" else None

    def create_module(self, spec):
        return None

    def exec_module(self, module) -> None:
        self.imported += 1
        warnings.warn("IProgress not found. Please update jupyter and ipywidgets.", UserWarning)


@pytest.mark.parametrize("in_kernel,notebook_imported,widgets,imports", [
    (True, False, False, 1), (False, False, False, 0), (True, True, False, 0), (True, False, True, 0)])
def test_tqdm_auto_is_imported_quietly_only_in_a_kernel_without_ipywidgets(monkeypatch, in_kernel: bool,
                                                                          notebook_imported: bool, widgets: bool,
                                                                          imports: int) -> None:
    fake = _WarningTqdmAuto()
    monkeypatch.setattr(sys, "meta_path", [fake, *sys.meta_path])
    monkeypatch.setattr(tqdm, "auto", tqdm.auto)  # restored after the stand-in is bound there
    monkeypatch.delitem(sys.modules, "tqdm.auto")
    for name, present in (("ipykernel.zmqshell", in_kernel), ("tqdm.autonotebook", notebook_imported)):
        if present:
            monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
        else:
            monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setattr(vitprobe.progress, "find_spec", lambda name: object() if widgets else None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        vitprobe.progress.import_tqdm_auto_quietly()
    assert fake.imported == imports and not caught
    if not imports:  # the stand-in does warn where imported plainly
        with pytest.warns(UserWarning, match="IProgress not found"):
            importlib.import_module("tqdm.auto")

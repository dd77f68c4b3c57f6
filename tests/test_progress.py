"""The progress bar falls back to text where the notebook widget cannot be drawn."""

from __future__ import annotations

import io
import sys
import time

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

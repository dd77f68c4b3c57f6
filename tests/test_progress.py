"""The progress bar falls back to text where the notebook widget cannot be drawn."""

from __future__ import annotations

import io
import warnings

import tqdm
import tqdm.auto

import vitprobe.progress


def test_text_bar_without_ipywidgets_and_no_iprogress_warning(monkeypatch) -> None:
    monkeypatch.setattr(vitprobe.progress, "find_spec", lambda name: None)
    bar_class = vitprobe.progress.progress_bar_class()
    assert bar_class is tqdm.tqdm
    with warnings.catch_warnings(), io.StringIO() as sink:
        warnings.simplefilter("error")
        bar_class(range(3), disable=False, file=sink).close()


def test_auto_bar_where_ipywidgets_is_installed(monkeypatch) -> None:
    monkeypatch.setattr(vitprobe.progress, "find_spec", lambda name: object())
    assert vitprobe.progress.progress_bar_class() is tqdm.auto.tqdm

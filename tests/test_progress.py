"""The progress bar falls back to text where the notebook widget cannot be drawn."""

from __future__ import annotations

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

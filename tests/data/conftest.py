"""Fixtures for the data tests: miniature trees written into tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from data_trees import write_image_folder, write_voc


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    return write_image_folder(tmp_path)


@pytest.fixture
def voc_root(tmp_path: Path) -> Path:
    return write_voc(tmp_path)

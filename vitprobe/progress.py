"""The progress bar class: a notebook widget where ipywidgets is installed, else the text bar.

``tqdm.auto`` alone picks the widget in every notebook and, without ipywidgets, warns
"IProgress not found" there; the text bar works in a notebook too.
"""

from __future__ import annotations

from importlib.util import find_spec


def progress_bar_class() -> type:
    """``tqdm.auto.tqdm`` if ipywidgets can be imported, else ``tqdm.tqdm``."""
    if find_spec("ipywidgets") is not None:
        from tqdm.auto import tqdm
    else:
        from tqdm import tqdm
    return tqdm

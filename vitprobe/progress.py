"""Progress bars: a notebook widget where ipywidgets is installed, else the text bar; none
where there is no stderr to draw on (a closed stream, ``2>&-``).

``tqdm.auto`` alone picks the widget in every notebook and, without ipywidgets, warns
"IProgress not found" there; the text bar works in a notebook too.
"""

from __future__ import annotations

import sys
from importlib.util import find_spec
from typing import Any


def progress_bar_class() -> type:
    """``tqdm.auto.tqdm`` if ipywidgets can be imported, else ``tqdm.tqdm``."""
    if find_spec("ipywidgets") is not None:
        from tqdm.auto import tqdm
    else:
        from tqdm import tqdm
    return tqdm


def progress_bar(iterable: Any = None, disable: bool = False, **options: Any) -> Any:
    """A bar of :func:`progress_bar_class` over ``iterable`` (``options`` go to tqdm), disabled
    when asked or when ``sys.stderr`` is closed (tqdm would write to None)."""
    return progress_bar_class()(iterable, disable=disable or sys.stderr is None, **options)

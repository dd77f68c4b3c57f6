"""Progress bars: a notebook widget where ipywidgets is installed, else the text bar; none
where there is no stderr to draw on (a closed stream, ``2>&-``); a redraw a minute where
stderr is a file (a batch job's log).

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


# Seconds between redraws where stderr is a file (a batch job's log): a line a minute, not ten a second.
FILE_INTERVAL_S = 60.0


def redraws_in_place(stream: Any) -> bool:
    """Whether ``stream`` is a terminal or a Jupyter kernel's output, where a bar redraws in place."""
    try:
        if stream.isatty():
            return True
    except (AttributeError, ValueError, OSError):  # no isatty, or closed
        return False
    return type(stream).__module__.split(".")[0] == "ipykernel"


def progress_bar(iterable: Any = None, disable: bool = False, **options: Any) -> Any:
    """A bar of :func:`progress_bar_class` over ``iterable`` (``options`` go to tqdm), disabled
    when asked or when ``sys.stderr`` is closed (tqdm would write to None); where stderr is a
    file or pipe it is redrawn at most every ``FILE_INTERVAL_S`` seconds (and at the end)."""
    if sys.stderr is not None and not redraws_in_place(sys.stderr):
        options.setdefault("mininterval", FILE_INTERVAL_S)
    return progress_bar_class()(iterable, disable=disable or sys.stderr is None, **options)

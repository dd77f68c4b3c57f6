"""Progress bars: a notebook widget where ipywidgets is installed, else the text bar; none
where there is no stderr to draw on (a closed stream, ``2>&-``); a redraw a minute where
stderr is a file (a batch job's log).

``tqdm.auto`` alone picks the widget in every notebook and, without ipywidgets, warns
"IProgress not found" there; the text bar works in a notebook too.
"""

from __future__ import annotations

import sys
import warnings
from importlib.util import find_spec
from typing import Any


def import_tqdm_auto_quietly() -> None:
    """In a Jupyter kernel without ipywidgets, import ``tqdm.auto`` once with its "IProgress
    not found" warning silenced. timm imports huggingface_hub, which imports ``tqdm.auto``, so
    that warning would greet every notebook that imports vitprobe, about bars vitprobe never
    draws (it draws the text bar there); once imported, the module does not warn again."""
    if "ipykernel.zmqshell" not in sys.modules or "tqdm.autonotebook" in sys.modules \
            or find_spec("ipywidgets") is not None:
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found")
        import tqdm.auto  # noqa: F401


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
    file or pipe it is redrawn at most every ``FILE_INTERVAL_S`` seconds (also by tqdm's monitor
    thread, which otherwise forces a redraw after ``maxinterval``, 10 s) and left at its last
    state on a line of its own (``leave=False`` would blank the line there, not remove it)."""
    if sys.stderr is not None and not redraws_in_place(sys.stderr):
        options.setdefault("mininterval", FILE_INTERVAL_S)
        options.setdefault("maxinterval", FILE_INTERVAL_S)
        options["leave"] = True
    return progress_bar_class()(iterable, disable=disable or sys.stderr is None, **options)

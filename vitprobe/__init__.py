"""vitprobe: what has a self-supervised Vision Transformer learned?

Public entry points are imported lazily so that ``import vitprobe`` stays fast.
"""

from __future__ import annotations

from typing import Any

from vitprobe.progress import import_tqdm_auto_quietly as _import_tqdm_auto_quietly

__version__ = "0.1.0"

# Functions and classes, each read from the module that defines it on first use.
_LAZY = {
    "load_model": "vitprobe.models",
    "inspect_checkpoint": "vitprobe.models",
    "analyze": "vitprobe.analysis",
    "Run": "vitprobe.results",
    "Result": "vitprobe.results",
    "compare": "vitprobe.results",
    "load_runs": "vitprobe.results",
    "resolve_dataset": "vitprobe.data",
}
# Sub-packages and modules reachable as attributes without an import: ``vitprobe.train`` is
# always the package (its ``train`` function is ``vitprobe.train.train``), never the function.
_SUBMODULES = ("analyzers", "capture", "heap", "metrics", "plots", "train")

__all__ = sorted(_LAZY) + sorted(_SUBMODULES) + ["__version__"]

_import_tqdm_auto_quietly()


def __getattr__(name: str) -> Any:
    import importlib

    if name in _SUBMODULES:
        return importlib.import_module(f"vitprobe.{name}")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vitprobe' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public names (the lazily imported ones too), for tab completion and ``dir()``."""
    return list(__all__)

"""vitprobe: what has a self-supervised Vision Transformer learned?

Public entry points are imported lazily so that ``import vitprobe`` stays fast.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load_model": "vitprobe.models",
    "inspect_checkpoint": "vitprobe.models",
    "analyze": "vitprobe.analysis",
    "capture": "vitprobe.capture",
    "Run": "vitprobe.results",
    "Result": "vitprobe.results",
    "compare": "vitprobe.results",
    "resolve_dataset": "vitprobe.data",
    "train": "vitprobe.train",
}

__all__ = sorted(_LAZY) + ["__version__", "metrics"]


def __getattr__(name: str) -> Any:
    if name == "metrics":
        import importlib

        return importlib.import_module("vitprobe.metrics")
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vitprobe' has no attribute {name!r}")

"""Registries fill themselves: every public module of a plugin package is imported.

Analyzers, checkpoint formats, training objectives and sub-commands each live in one module
of their package and register on import, so adding a file is enough to add a plugin.
Modules whose name starts with ``_`` are helpers and are not imported here.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Iterable


def public_modules(path: Iterable[str]) -> list[str]:
    """Names of the modules directly under ``path`` (a package's ``__path__``), without ``_*``."""
    return sorted(m.name for m in pkgutil.iter_modules(list(path)) if not m.name.startswith("_"))


def import_all(package: str, path: Iterable[str]) -> list[str]:
    """Import ``package.<name>`` for every public module under ``path``; returns the names."""
    names = public_modules(path)
    for name in names:
        importlib.import_module(f"{package}.{name}")
    return names

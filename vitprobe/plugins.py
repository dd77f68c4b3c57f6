"""Registries fill themselves: every public module of a plugin package is imported.

Analyzers, checkpoint formats and training objectives each live in one module of their
package and register on import; a sub-command module is found the same way and registered by
the parser (``cli.build_parser`` calls its ``register``). So adding a file is enough to add a plugin.
Modules whose name starts with ``_`` are helpers and are not imported here. A module of
one's own, outside the package, registers the same way when imported: in Python by importing
it, on the command line by ``--plugin NAME`` or ``VITPROBE_PLUGINS`` (:func:`load_plugin`).
"""

from __future__ import annotations

import importlib
import importlib.util
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


PLUGINS_VARIABLE = "VITPROBE_PLUGINS"  # comma-separated, read by the command line like --plugin
OWN_MODULE_HINT = "one of your own: import its module first, or --plugin FILE.py on the command line"


def load_plugin(name: str) -> None:
    """Import a module of one's own analyzers, checkpoint formats or objectives, which register
    on import: ``name`` is a path to a ``.py`` file or a module name (found on the Python path
    or in the current folder). ConfigError, naming it, when it is not found or its import fails."""
    import os
    import sys
    from pathlib import Path

    from vitprobe.errors import AnalyzerDefinitionError, ConfigError, brief_reason

    where = f"--plugin {name}"
    path = Path(name).expanduser()
    try:
        if path.suffix == ".py":
            if not path.is_file():
                raise ConfigError(f"{where}: no such file; give a .py file or a module name")
            taken = sys.modules.get(path.stem)
            if taken is not None and getattr(taken, "__file__", None) != str(path.resolve()):
                raise ConfigError(f"{where}: a module named {path.stem!r} is already imported "
                                  f"({getattr(taken, '__file__', None) or 'built in'}); rename the file")
            spec = importlib.util.spec_from_file_location(path.stem, path.resolve())
            module = importlib.util.module_from_spec(spec)
            sys.modules[path.stem] = module  # as an import would, so that its classes can be found by module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[path.stem]
                raise
            return
        if os.getcwd() not in sys.path:
            sys.path.append(os.getcwd())
        importlib.import_module(name)
    except ConfigError:
        raise
    except ModuleNotFoundError as err:
        if err.name is None or not (name == err.name or name.startswith(err.name + ".")):
            raise ConfigError(f"{where}: importing it failed ({brief_reason(err)}); install what it imports") from err
        raise ConfigError(f"{where}: no module named {err.name!r} on the Python path or in the current "
                          "folder; give a module name or a path to a .py file") from err
    except AnalyzerDefinitionError as err:  # vitprobe's own message, whole: it ends with the fix
        raise ConfigError(f"{where}: {' '.join(str(err).split())}") from err
    except Exception as err:  # the plugin's own code failed: say whose, --debug shows where
        raise ConfigError(f"{where}: importing it raised {type(err).__name__}: {brief_reason(err)} "
                          "(--debug shows the traceback)") from err


def plugin_names(argv: Iterable[str], environment: str | None) -> list[str]:
    """The plugins a command line names: ``VITPROBE_PLUGINS`` (comma-separated), then each
    ``--plugin NAME`` / ``--plugin=NAME`` in ``argv``, in order."""
    names = [n.strip() for n in (environment or "").split(",") if n.strip()]
    given = list(argv)
    for i, arg in enumerate(given):
        if arg == "--plugin" and i + 1 < len(given):
            names.append(given[i + 1])
        elif arg.startswith("--plugin="):
            names.append(arg.split("=", 1)[1])
    return names

"""Analysis parameters read by their annotations: the same checks for ``--param`` and Python.

``--param`` values arrive parsed as JSON where they parse, else as text; Python passes any
object. Each value is checked against the annotation of the analyzer's ``__init__`` and
brought to one form (a list of block numbers, a float); a value of the wrong kind is a
one-line ConfigError instead of a TypeError deep inside the analysis, and never silently
reinterpreted (``"no"`` is not a boolean, ``1.5`` is not a block).
"""

from __future__ import annotations

import math
import typing
from collections.abc import Sequence
from typing import Any

from vitprobe.errors import ConfigError, is_real, is_whole

_BLOCKS_HELP = "block numbers: [1,6,12], 1,6,12 or 12 (null: every block)"
_KIND_HELP = {bool: "true|false", int: "integer", float: "finite number", str: "text", "blocks": _BLOCKS_HELP}
KINDS_HELP = "bool, int, float, str, a Literal of choices or Sequence[int] | None (block numbers)"


def _kind(annotation: Any) -> Any:
    """bool, int, float, str, "blocks" (a sequence of ints, or None), the tuple of a Literal's
    choices, or None (unchecked)."""
    if annotation in (bool, int, float, str):
        return annotation
    if typing.get_origin(annotation) is typing.Literal:
        return typing.get_args(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if args and all(typing.get_origin(a) in (Sequence, list, tuple) and typing.get_args(a)[:1] == (int,)
                    for a in args):
        return "blocks"
    return None


def _blocks(value: Any) -> list[int] | None:
    if value is None:
        return None
    if is_whole(value):
        return [int(value)]
    if isinstance(value, str):
        text = value.strip()
        bracketed = text.startswith("[") and text.endswith("]")
        parts = [p.strip() for p in (text[1:-1] if bracketed else text).split(",")]
        if all(p.lstrip("-").isdigit() for p in parts):
            return [int(p) for p in parts]
    elif isinstance(value, (list, tuple)) and value and all(is_whole(v) for v in value):
        return [int(v) for v in value]
    raise ValueError


def check_value(kind: Any, value: Any) -> Any:
    """``value`` in the form ``kind`` asks for; ValueError when it does not fit."""
    if kind is bool and not isinstance(value, bool):
        raise ValueError
    if kind is int:
        if not is_whole(value):
            raise ValueError
        return int(value)
    if kind is float:
        if not is_real(value) or not math.isfinite(value):  # a NumPy float too (a sweep's value)
            raise ValueError
        return float(value)
    if kind is str and not isinstance(value, str):
        raise ValueError
    if kind == "blocks":
        return _blocks(value)
    if isinstance(kind, tuple) and value not in kind:
        raise ValueError
    return value


def param_kinds(cls: type) -> dict[str, Any]:
    """Parameter name -> kind for every keyword of ``cls.__init__``."""
    hints = typing.get_type_hints(cls.__init__)
    return {name: _kind(hint) for name, hint in hints.items() if name != "return"}


def check_params(cls: type, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` checked and normalised for analyzer class ``cls`` (ConfigError on a misfit)."""
    kinds = param_kinds(cls)
    out = {}
    for name, value in params.items():
        kind = kinds.get(name)
        try:
            out[name] = check_value(kind, value)
        except ValueError:
            raise ConfigError(f"analysis {cls.name!r}: {name} takes {describe(kind)}, got {value!r}; "
                              f"e.g. --param {cls.name}.{name}={_example(kind)[0]} (Python: "
                              f"analyzer_params={{{cls.name!r}: {{{name!r}: {_example(kind)[1]}}}}})") from None
    return out


# An example value of each kind, as the command line and as Python write it.
_EXAMPLES = {bool: ("true", "True"), int: ("10", "10"), float: ("0.5", "0.5"), str: ("text", "'text'"),
             "blocks": ("[1,6,12]", "[1, 6, 12]")}


def _example(kind: Any) -> tuple[str, str]:
    """An example value of ``kind``: (command line, Python); a choice's first option."""
    if isinstance(kind, tuple):
        return str(kind[0]), repr(kind[0])
    return _EXAMPLES[kind]


def describe(kind: Any) -> str:
    """What a parameter of ``kind`` takes, in words."""
    if isinstance(kind, tuple):
        return "|".join(map(str, kind))
    return _KIND_HELP.get(kind, "any value")


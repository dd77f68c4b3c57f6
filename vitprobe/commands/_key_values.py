"""``key=value`` command-line options (``train --set``, ``analyze --param``)."""

from __future__ import annotations

import json
from typing import Any

from vitprobe.errors import ConfigError


def parse_key_values(items: list[str] | None, flag: str, example: str) -> dict[str, Any]:
    """``["key=value", ...]`` -> dict; values are read as JSON where they parse (numbers,
    true/false/null, lists), else kept as strings; a key given twice is a ConfigError."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"{flag} {item!r} is not key=value; e.g. {flag} {example}")
        if key in out:
            raise ConfigError(f"{flag} {key}= is given twice; give each key once")
        try:
            out[key] = json.loads(text)
        except json.JSONDecodeError:
            out[key] = text
    return out

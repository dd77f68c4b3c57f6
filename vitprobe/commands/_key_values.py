"""``key=value`` command-line options (``train --set``, ``analyze`` and ``reproduce --param``,
``reproduce --model``)."""

from __future__ import annotations

import json
from typing import Any

from vitprobe.errors import ConfigError


def parse_key_values(items: list[str] | None, flag: str, example: str, as_json: bool = True) -> dict[str, Any]:
    """``["key=value", ...]`` -> dict; a key given twice is a ConfigError. With ``as_json``
    values are read as JSON where they parse (numbers, true/false/null, lists), else kept as
    strings; without it they are strings (paths), which may not be empty."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or not (as_json or text):
            raise ConfigError(f"{flag} {item!r} is not key=value; e.g. {flag} {example}")
        if key in out:
            raise ConfigError(f"{flag} {key}= is given twice; give each key once")
        try:
            out[key] = json.loads(text) if as_json else text
        except json.JSONDecodeError:
            out[key] = text
    return out


def parse_analysis_params(items: list[str] | None) -> dict[str, dict[str, Any]]:
    """``--param ANALYSIS.KEY=VALUE`` options -> {analysis: {key: value}}."""
    params: dict[str, dict[str, Any]] = {}
    for dotted, value in parse_key_values(items, "--param", "knn.pooling=mean").items():
        analysis, dot, key = dotted.partition(".")
        if not dot or not analysis or not key:
            raise ConfigError(f"--param {dotted}={value}: name the analysis and its parameter, "
                              "e.g. --param knn.pooling=mean")
        params.setdefault(analysis, {})[key] = value
    return params

"""Strict YAML reading for recipes and training configs: a mapping, no key given twice."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from vitprobe.errors import ConfigError


class _RepeatedKey(yaml.YAMLError):
    def __init__(self, key: Any, line: int) -> None:
        super().__init__(f"key {key!r} repeated")
        self.key, self.line = key, line


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (YAML would keep the last)."""


def _mapping_without_repeats(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node)
        if not isinstance(key, str | int | float | bool):
            continue  # an unhashable key is construct_mapping's error
        if key in seen:
            raise _RepeatedKey(key, key_node.start_mark.line)
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_repeats)
# YAML 1.1 (PyYAML) reads 1e-3 and 1.0e3 as strings: a float needs a dot and a signed exponent.
# YAML 1.2 and JSON read them as numbers, as a user writing a learning rate means; the lists of
# the inherited resolvers are copied first, so that yaml.SafeLoader itself is left unchanged.
_StrictLoader.yaml_implicit_resolvers = {first: list(resolvers) for first, resolvers
                                         in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float",
                                    re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
                                    list("-+.0123456789"))


def read_yaml_mapping(path: Path, kind: str, shape: str, missing: str = "") -> dict[str, Any]:
    """The mapping a YAML (or JSON) file holds, read with the safe loader; one-line ConfigError
    naming ``path`` for a folder, a missing file (``missing`` appended), bad syntax, a key
    given twice, or anything but a mapping (``shape`` says what the ``kind`` of file holds)."""
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder; give a {kind} .yaml file")
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.load(fh, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such {kind} file{missing}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file; give a {kind} .yaml file") from None
    except _RepeatedKey as err:
        raise ConfigError(f"{path} (line {err.line + 1}): key {err.key!r} is given twice (YAML would "
                          "silently keep the last); give each key once") from None
    except yaml.YAMLError as err:
        line = getattr(getattr(err, "problem_mark", None), "line", None)
        where = f" (line {line + 1})" if line is not None else ""
        raise ConfigError(f"{path}{where}: not valid YAML; fix the syntax") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: {shape}")
    return data

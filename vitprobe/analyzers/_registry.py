"""The analyzer registry: ``@register_analyzer`` on a class, ``get_analyzer(name, **params)``."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any, TypeVar

from vitprobe.errors import AnalyzerDefinitionError, ConfigError, warn_user
from vitprobe.plugins import OWN_MODULE_HINT

_ANALYZERS: dict[str, type] = {}
# Protocol entries that the run (vitprobe.analysis) and every analyzer write: a parameter of
# the same name would overwrite them in its result's protocol.
RESERVED_PARAMS = ("dataset", "image_size", "checkpoint", "batch_size", "seed", "device", "world_size",
                   "analysis", "std", "value_units")

A = TypeVar("A", bound=type)


def register_analyzer(cls: A) -> A:
    """Class decorator: register ``cls`` under ``cls.name`` (names are unique); it must
    declare the ``metrics`` its table holds, a ``grid_bound`` of None, ``"pixels"`` or
    ``"patches"``, ``uninformative_when`` keys among its ``outcome_keys`` and metrics among its
    ``metrics``, ``keys_of_metrics`` naming metrics among its ``metrics``, and give every
    parameter a default and a name outside ``RESERVED_PARAMS``.
    A class of the same module and qualified name replaces the one registered (a notebook cell
    run again, a module reloaded), as does, with a warning, another class of ``__main__`` (a
    notebook's or script's class renamed and its cell run again)."""
    name = getattr(cls, "name", "")
    if not name:
        raise AnalyzerDefinitionError(f"{cls.__name__} needs a class attribute `name` to be registered")
    metrics = getattr(cls, "metrics", ())
    if not metrics or not isinstance(metrics, tuple) or not all(isinstance(m, str) for m in metrics):
        raise AnalyzerDefinitionError(f"{cls.__name__} needs a class attribute `metrics`, a tuple of the metric names its "
                        f"table holds (e.g. ('mass',)), got {metrics!r}")
    if getattr(cls, "grid_bound", None) not in (None, "pixels", "patches"):
        raise AnalyzerDefinitionError(f"{cls.__name__}.grid_bound is \"pixels\", \"patches\" or None (what its numbers are "
                        f"measured in), got {cls.grid_bound!r}")
    for key, (named, _why) in getattr(cls, "uninformative_when", {}).items():
        if key not in getattr(cls, "outcome_keys", ()) or not set(named) <= set(metrics):
            raise AnalyzerDefinitionError(f"{cls.__name__}.uninformative_when maps an outcome of its outcome_keys to metrics "
                            f"of its metrics, got {key!r} -> {named!r}")
    for key, named in getattr(cls, "keys_of_metrics", {}).items():
        if not isinstance(named, tuple) or not named or not set(named) <= set(metrics):
            raise AnalyzerDefinitionError(f"{cls.__name__}.keys_of_metrics maps a protocol key to a tuple of its metrics, "
                                          f"got {key!r} -> {named!r}")
    _check_params(cls)
    taken = _ANALYZERS.get(name)
    if taken is not None and _where(taken) != _where(cls) and taken.__module__ == cls.__module__ == "__main__":
        warn_user(f"analysis {name!r}: {cls.__qualname__} replaces {taken.__qualname__}, registered earlier "
                  "under that name in __main__")
    elif taken is not None and _where(taken) != _where(cls):
        raise AnalyzerDefinitionError(f"analysis name {name!r} is already taken by {_where(taken)}; give "
                        f"{cls.__qualname__} another `name`")
    _ANALYZERS[name] = cls
    return cls


def _check_params(cls: type) -> None:
    """Each parameter of ``cls.__init__`` has a default that fits its annotation (a kind that
    ``--param`` can check: see ``_params``) and a name outside ``RESERVED_PARAMS``."""
    from vitprobe.analyzers._params import KINDS_HELP, check_value, param_kinds

    try:
        kinds = param_kinds(cls)
    except (NameError, TypeError, SyntaxError) as err:  # an annotation naming what its module lacks
        raise AnalyzerDefinitionError(f"{cls.__name__}: the annotations of __init__ cannot be read "
                                      f"({type(err).__name__}: {err}); import what they name (e.g. "
                                      "from collections.abc import Sequence)") from None
    for param in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.default is param.empty:
            raise AnalyzerDefinitionError(f"{cls.__name__}: parameter {param.name!r} needs a default (an analysis runs "
                            "with no parameters given; --param sets those that differ)")
        if param.name in RESERVED_PARAMS:
            raise AnalyzerDefinitionError(f"{cls.__name__}: parameter {param.name!r} would overwrite the run's protocol "
                            f"entry of that name; call it e.g. {cls.name}_{param.name}")
        kind = kinds.get(param.name)
        if kind is None:
            raise AnalyzerDefinitionError(f"{cls.__name__}: parameter {param.name!r} needs an annotation of {KINDS_HELP}, "
                            "by which --param values are checked")
        try:
            check_value(kind, param.default)
        except ValueError:
            raise AnalyzerDefinitionError(f"{cls.__name__}: parameter {param.name!r} defaults to {param.default!r}, "
                            f"which its annotation does not take") from None


def _where(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def outcome_keys(analysis: str | None) -> tuple[str, ...]:
    """The ``outcome_keys`` of the analysis of that name (none if not registered)."""
    return tuple(getattr(_ANALYZERS.get(str(analysis)), "outcome_keys", ()))


def protocol_of_metric(protocol: dict[str, Any], metric: str) -> dict[str, Any]:
    """``protocol`` without the keys that its analysis (``protocol["analysis"]``) says concern
    only other metrics than ``metric`` (its ``keys_of_metrics``)."""
    concern = getattr(_ANALYZERS.get(str(protocol.get("analysis"))), "keys_of_metrics", {})
    return {k: v for k, v in protocol.items() if k not in concern or metric in concern[k]}


def list_analyzers() -> list[str]:
    """Names of every registered analysis, sorted."""
    return sorted(_ANALYZERS)


def analyzer_class(name: str) -> type:
    """The class registered under ``name``; ConfigError naming the choices otherwise."""
    try:
        return _ANALYZERS[name]
    except KeyError:
        raise ConfigError(f"unknown analysis {name!r}; choose from {', '.join(list_analyzers())} "
                          f"({OWN_MODULE_HINT})") from None


def analysis_giving(metric: Any, names: Iterable[str]) -> str | None:
    """The first of the analyses ``names`` whose table holds ``metric``, or None."""
    return next((name for name in names if metric in analyzer_class(name).metrics), None)


def get_analyzer(name: str, **params: Any) -> Any:
    """A fresh analyzer ``name`` built with ``params``; unknown parameters raise ConfigError."""
    cls = analyzer_class(name)
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ConfigError(f"analysis {name!r} has no parameter {', '.join(unknown)}; "
                          f"it takes {', '.join(accepted) or 'no parameters'}")
    from vitprobe.analyzers._params import check_params
    from vitprobe.metrics._checks import MetricInputError

    params = check_params(cls, params)
    try:
        analyzer = cls(**params)
    except TypeError as err:  # a value of the wrong type met a comparison or a conversion
        raise ConfigError(f"analysis {name!r}: a parameter has a value of the wrong type ({err}); "
                          f"given {params}") from None
    except MetricInputError as err:  # a value outside the range of the metric it feeds
        raise ConfigError(f"analysis {name!r}: {err} (--param {name}.NAME=VALUE; Python "
                          f"analyzer_params={{{name!r}: {{...}}}})") from None
    unkept = [p for p in accepted if not hasattr(analyzer, p)]
    if unkept:  # params() reads each back into the protocol, after the pass
        raise AnalyzerDefinitionError(f"{cls.__name__} does not keep its parameter {unkept[0]!r} as self.{unkept[0]}, "
                        "where its protocol reads it")
    return analyzer

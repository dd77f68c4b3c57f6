"""register_analyzer: a notebook cell run again replaces its class; a clash of names is refused."""

from __future__ import annotations

import pytest

from vitprobe.analyzers import _registry
from vitprobe.analyzers import get_analyzer
from vitprobe.analyzers.base import Analyzer


@pytest.fixture(autouse=True)
def own_registry(monkeypatch):
    monkeypatch.setattr(_registry, "_ANALYZERS", dict(_registry._ANALYZERS))


def _cell(version: int) -> type:
    """What a notebook cell defining ``Mass`` makes each time it runs (same module, same qualname)."""
    class Mass(Analyzer):
        name = "cell_mass"
        metrics = ("mass",)
        edition = version

    return _registry.register_analyzer(Mass)


def test_running_the_defining_cell_again_replaces_the_class():
    _cell(1)
    second = _cell(2)
    assert type(get_analyzer("cell_mass")) is second and second.edition == 2


def test_another_class_under_a_taken_name_is_refused():
    _cell(1)

    class Other(Analyzer):
        name = "cell_mass"
        metrics = ("mass",)

    with pytest.raises(TypeError, match=r"'cell_mass' is already taken by .*_cell.<locals>.Mass; give "
                                         r".*Other another `name`"):
        _registry.register_analyzer(Other)
    with pytest.raises(TypeError, match="already taken"):
        _registry.register_analyzer(type("Fourier", (Analyzer,), {"name": "fourier", "metrics": ("x",)}))

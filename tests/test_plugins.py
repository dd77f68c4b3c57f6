"""Plugin packages register every public module; the package's attributes stay what they are."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

import vitprobe
from vitprobe.plugins import import_all, public_modules


def test_import_all_imports_public_modules_and_skips_helpers(tmp_path: Path, monkeypatch) -> None:
    pkg = tmp_path / "plugpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "alpha.py").write_text("import plugpkg\nplugpkg.seen = getattr(plugpkg, 'seen', []) + ['alpha']\n")
    (pkg / "_helper.py").write_text("raise RuntimeError('helpers are not plugins')\n")
    (pkg / "beta").mkdir()
    (pkg / "beta" / "__init__.py").write_text("import plugpkg\nplugpkg.seen = getattr(plugpkg, 'seen', []) + ['beta']\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("plugpkg")
    try:
        assert import_all("plugpkg", module.__path__) == ["alpha", "beta"]
        assert module.seen == ["alpha", "beta"] and "plugpkg._helper" not in sys.modules
    finally:
        for name in [n for n in sys.modules if n == "plugpkg" or n.startswith("plugpkg.")]:
            del sys.modules[name]


@pytest.mark.parametrize("package", ["vitprobe.analyzers", "vitprobe.models.formats",
                                     "vitprobe.train.objectives", "vitprobe.commands"])
def test_every_public_module_of_a_plugin_package_is_loaded(package: str) -> None:
    if package == "vitprobe.commands":
        from vitprobe.cli import build_parser

        build_parser()
    module = importlib.import_module(package)
    for name in public_modules(module.__path__):
        assert f"{package}.{name}" in sys.modules


def test_new_objective_is_a_method_with_its_published_length() -> None:
    from vitprobe.train import TrainConfig
    from vitprobe.train.objectives import base
    from vitprobe.train.objectives.mae import MAE

    class Longer(MAE):
        name = "longer_mae"
        published_epochs = 1600

    base.register_objective(Longer)
    try:
        config = TrainConfig(method="longer_mae", preset="vit_b16")
        config.validate()
        assert config.total_epochs() == 1600
        assert TrainConfig(method="longer_mae", preset="tiny").total_epochs() == 10
    finally:
        del base._REGISTRY["longer_mae"]


def test_register_objective_requires_a_published_length() -> None:
    from vitprobe.train.objectives import base
    from vitprobe.train.objectives.mae import MAE

    class NoLength(MAE):
        name = "no_length"
        published_epochs = None  # type: ignore[assignment]

    with pytest.raises(TypeError, match="published_epochs"):
        base.register_objective(NoLength)
    assert "no_length" not in base.list_objectives()


def test_an_objective_under_a_taken_name_is_refused() -> None:
    from vitprobe.train.objectives import base
    from vitprobe.train.objectives.mae import MAE

    class Impostor(MAE):
        name = "mae"

    with pytest.raises(TypeError, match=r"objective name 'mae' is already taken by vitprobe.train.objectives.mae.MAE"):
        base.register_objective(Impostor)
    assert base.objective_class("mae") is MAE
    base.register_objective(MAE)  # the same class again (a reload) replaces itself


def test_register_format_checks_what_detection_needs_and_refuses_a_taken_name() -> None:
    """A format without a priority used to register, then break every load with an
    AttributeError; one named like a built-in silently replaced it."""
    from vitprobe.models.formats import base
    from vitprobe.models.formats.dino import DinoTraining

    before = dict(base._REGISTRY)

    class NoPriority(base.CheckpointFormat):
        name, summary = "no_priority", "a test layout"

        def detect(self, raw):
            return False

        def extract(self, raw, key):
            raise NotImplementedError

    class NoDetect(base.CheckpointFormat):
        name, summary, priority = "no_detect", "a test layout", 50

    class Impostor(DinoTraining):
        pass

    try:
        with pytest.raises(TypeError, match=r"NoPriority needs class attributes `name` and `summary` \(text\) and an int `priority`"):
            base.register_format(NoPriority)
        with pytest.raises(TypeError, match=r"NoDetect must implement detect\(\)"):
            base.register_format(NoDetect)
        with pytest.raises(TypeError, match=r"checkpoint format name 'dino' is already taken by "
                                            r"vitprobe.models.formats.dino.DinoTraining; give .*Impostor another `name`"):
            base.register_format(Impostor)
        assert base._REGISTRY == before
    finally:
        base._REGISTRY.clear()
        base._REGISTRY.update(before)


def test_submodule_attributes_are_modules_on_every_access() -> None:
    for name in ("train", "capture", "heap", "metrics", "analyzers", "plots"):
        first, second = getattr(vitprobe, name), getattr(vitprobe, name)
        assert first is second is sys.modules[f"vitprobe.{name}"]
    assert callable(vitprobe.train.train) and callable(vitprobe.capture.capture)
    assert callable(vitprobe.heap.release_freed_memory)
    assert callable(vitprobe.load_model) and callable(vitprobe.analyze)
    with pytest.raises(AttributeError):
        vitprobe.no_such_thing  # noqa: B018


def test_submodules_are_reachable_without_a_side_effect_import(monkeypatch) -> None:
    """Each through vitprobe.__getattr__ alone: the attribute that importing the submodule
    elsewhere set on the package is taken away first."""
    for name in ("train", "capture", "heap", "metrics", "analyzers", "plots"):
        importlib.import_module(f"vitprobe.{name}")
        monkeypatch.delattr(vitprobe, name, raising=False)
        assert getattr(vitprobe, name) is sys.modules[f"vitprobe.{name}"]


def test_tab_completion_lists_the_lazy_public_names() -> None:
    """dir(vitprobe) (what IPython completes from) holds every name of __all__, each of which
    resolves."""
    names = dir(vitprobe)
    assert set(vitprobe.__all__) <= set(names)
    assert {"analyze", "load_model", "compare", "train", "metrics"} <= set(names)
    for name in vitprobe.__all__:
        getattr(vitprobe, name)

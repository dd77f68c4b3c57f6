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


def test_register_objective_requires_a_published_length_and_a_name() -> None:
    from vitprobe.train.objectives import base
    from vitprobe.train.objectives.mae import MAE

    class NoName(base.Objective):
        defaults = dict(MAE.defaults)
        published_epochs = 1

    with pytest.raises(TypeError, match=r"objective class .*NoName lacks a `name` \(its --method value\)"):
        base.register_objective(NoName)

    class NoLength(MAE):
        name = "no_length"
        published_epochs = None  # type: ignore[assignment]

    with pytest.raises(TypeError, match="published_epochs"):
        base.register_objective(NoLength)
    assert "no_length" not in base.list_objectives()

    class BadText(base.Objective):
        name = "bad_text"
        defaults = dict(MAE.defaults)
        published_epochs = 1
        loss_text = "L2 with {no_such_hparam} and a {brace"

    with pytest.raises(TypeError, match=r"objective 'bad_text': loss_text .* does not fill from its defaults"):
        base.register_objective(BadText)
    assert "bad_text" not in base.list_objectives()


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
        for attributes, said in (({"keys": "teacher"}, r"`keys` must be a tuple of sub-checkpoint names"),
                                 ({"drops": ["head.*"]}, r"`drops` must map a glob"),
                                 ({"drops": {"blocks.3.*": "x"}}, r"drops 'blocks.3.\*' matches the encoder's own "
                                                                   r"key 'blocks.3.norm1.weight'")):
            bad = type("Bad", (NoPriority,), {"priority": 50, "name": "bad_layout", **attributes})
            with pytest.raises(TypeError, match=said):
                base.register_format(bad)
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


_PLUGIN = '''"""A test plugin: the mean norm of the patch tokens per layer."""
import torch

from vitprobe.analyzers import register_analyzer
from vitprobe.analyzers.base import LayerAnalyzer, tidy


@register_analyzer
class PluginTokenNorm(LayerAnalyzer):
    """Mean L2 norm of the patch tokens per layer."""

    name = "plugin_token_norm"
    site_kind = "tokens"
    metrics = ("token_norm",)
    value_units = "token_norm: L2"

    def _moment_shapes(self):
        return {"token_norm": (len(self.layers_),)}

    def _update(self, batch):
        norms = [t[:, self.info_.num_prefix_tokens:].norm(dim=-1).mean(dim=1) for t in self._inputs(batch)]
        self._add_moments("token_norm", torch.stack(norms, dim=1))

    def _table(self):
        return tidy("token_norm", {"layer": self.layers_}, *self._moments("token_norm"))
'''


def test_the_command_line_runs_an_analyzer_of_ones_own_named_by_plugin(tmp_path: Path, monkeypatch, capsys) -> None:
    """`--plugin FILE.py` (or VITPROBE_PLUGINS=module) registers it before the command runs; its
    table equals the same analysis run in Python; a plugin not found or failing is one line."""
    from vitprobe.analyzers import _registry
    from vitprobe.cli import main
    from vitprobe.models.architecture import ArchSpec, build_model
    from vitprobe.models.own_format import save_encoder
    from vitprobe.results import load_runs

    monkeypatch.setattr(_registry, "_ANALYZERS", dict(_registry._ANALYZERS))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "tokennorm", raising=False)
    (tmp_path / "tokennorm.py").write_text(_PLUGIN)
    arch = ArchSpec(patch_size=8, embed_dim=32, depth=2, num_heads=2, img_size=32)
    model = build_model(arch)
    save_encoder(tmp_path / "enc.safetensors", model, arch, {"objective": "random_init"})
    argv = ["analyze", "--checkpoint", "enc.safetensors", "--data", "synthetic:8", "--analyses", "plugin_token_norm",
            "--no-progress", "--out", "out"]
    assert main(argv) == 2 and "unknown analysis 'plugin_token_norm'" in capsys.readouterr().err
    assert main([*argv, "--plugin", "tokennorm.py"]) == 0
    [run] = load_runs(tmp_path / "out")
    direct = vitprobe.analyze(model, "synthetic:8", analyses=["plugin_token_norm"], progress=False)
    assert run["plugin_token_norm"].table.equals(direct["plugin_token_norm"].table)
    assert (tmp_path / "out" / "enc" / "plugin_token_norm.png").is_file()
    monkeypatch.delitem(sys.modules, "tokennorm")
    monkeypatch.setenv("VITPROBE_PLUGINS", "tokennorm")
    assert main(["analyses"]) == 0 and "plugin_token_norm\n  Mean L2 norm" in capsys.readouterr().out
    (tmp_path / "bare.py").write_text(_PLUGIN.replace('"""Mean L2 norm of the patch tokens per layer."""', "")
                                      .replace("plugin_token_norm", "bare_token_norm").replace("PluginToken", "Bare"))
    assert main(["analyses", "--plugin", "bare.py"]) == 0  # not LayerAnalyzer's text as its own
    assert "bare_token_norm\n  (no description: the class has no docstring)" in capsys.readouterr().out
    monkeypatch.delenv("VITPROBE_PLUGINS")
    (tmp_path / "broken.py").write_text("import torch\nraise NameError('oops')\n")
    for plugin, said in (("nothere", "--plugin nothere: no module named 'nothere' on the Python path or in the "
                                     "current folder; give a module name or a path to a .py file"),
                         ("nothere.py", "--plugin nothere.py: no such file"),
                         ("broken.py", "--plugin broken.py: importing it raised NameError: oops (--debug shows")):
        assert main(["analyses", f"--plugin={plugin}"]) == 2
        assert capsys.readouterr().err.startswith(f"vitprobe: error: {said}")
    assert "broken" not in sys.modules
    (tmp_path / "unannotated.py").write_text(_PLUGIN.replace("plugin_token_norm", "loose_token_norm").replace(
        "PluginToken", "Loose").replace('    value_units = "token_norm: L2"\n', '    value_units = "token_norm: L2"\n\n'
                                        "    def __init__(self, scale=1.0):\n        super().__init__()\n"
                                        "        self.scale = scale\n"))
    assert main(["analyses", "--plugin", "unannotated.py"]) == 2  # vitprobe's own message, whole: it ends with the fix
    err = capsys.readouterr().err
    assert err.startswith("vitprobe: error: --plugin unannotated.py: Loose") and "needs an annotation of" in err
    assert err.endswith("by which --param values are checked\n") and "--debug" not in err
    (tmp_path / "json.py").write_text("raise RuntimeError('never run')\n")
    assert main(["analyses", "--plugin", "json.py"]) == 2  # it would have replaced the standard json module
    assert "--plugin json.py: a module named 'json' is already imported" in capsys.readouterr().err
    assert sys.modules["json"].__name__ == "json" and hasattr(sys.modules["json"], "dumps")


def test_a_format_of_ones_own_that_fails_is_named_and_other_files_still_load(tmp_path: Path) -> None:
    """A detect() that raises used to break the loading of every file with a bare KeyError; an
    extract() that raises did not say which format's code failed."""
    import timm
    import torch

    from vitprobe.errors import CheckpointError, VitprobeWarning
    from vitprobe.models.formats import base

    class Fragile(base.CheckpointFormat):
        name, summary, priority = "fragile", "a test layout", 1

        def detect(self, raw):
            return raw.obj["weights"] is not None  # KeyError on other files

        def extract(self, raw, key):
            raise ValueError("half-written")

    model = timm.models.vision_transformer.VisionTransformer(img_size=32, patch_size=8, embed_dim=32, depth=1,
                                                             num_heads=2, num_classes=0)
    torch.save(model.state_dict(), tmp_path / "plain.pth")
    torch.save({"weights": model.state_dict()}, tmp_path / "own.pth")
    before = dict(base._REGISTRY)
    try:
        base.register_format(Fragile)
        with pytest.warns(VitprobeWarning, match=r"checkpoint format 'fragile' \(.*\) raised KeyError in detect\(\) "
                                                 r"on .*plain.pth: 'weights'; it is passed over: fix its detect\(\)"):
            loaded = vitprobe.load_model(tmp_path / "plain.pth", num_heads=2)
        assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
        with pytest.raises(CheckpointError, match=r"checkpoint format 'fragile' \(.*\) raised ValueError in extract\(\) "
                                                  r"on .*own.pth: half-written; fix its extract\(\)"):
            vitprobe.load_model(tmp_path / "own.pth", num_heads=2)
    finally:
        base._REGISTRY.clear()
        base._REGISTRY.update(before)


def test_plugin_names_and_a_plugin_whose_own_import_is_missing(tmp_path: Path, monkeypatch) -> None:
    from vitprobe.errors import ConfigError
    from vitprobe.plugins import load_plugin, plugin_names

    assert plugin_names(["analyze", "--plugin", "a.py", "--plugin=b"], " mine , other ,") == ["mine", "other", "a.py", "b"]
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "needs_dep", raising=False)
    (tmp_path / "needs_dep.py").write_text("import not_installed_dependency\n")
    with pytest.raises(ConfigError, match=r"--plugin needs_dep.py: importing it failed \(No module named "
                                          r"'not_installed_dependency'\); install what it imports"):
        load_plugin("needs_dep.py")
    monkeypatch.delitem(sys.modules, "plain_plugin", raising=False)
    (tmp_path / "plain_plugin.py").write_text("VALUE = 1\n")
    load_plugin("plain_plugin.py")
    load_plugin("plain_plugin.py")  # the same file again (a second command in one session) is no clash
    assert sys.modules["plain_plugin"].VALUE == 1

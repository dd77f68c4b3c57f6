"""register_analyzer: a notebook cell run again replaces its class; a clash of names, a parameter
without a default or one named like a run protocol entry is refused."""

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


def test_a_renamed_class_of_main_replaces_the_one_it_renames_with_a_warning():
    """A notebook (module __main__) whose cell's class was renamed and run again: the new class
    replaces the old one, saying so (it was refused until the kernel restarted)."""
    first = type("TokenNorm", (Analyzer,), {"name": "cell_norm", "metrics": ("norm",), "__module__": "__main__"})
    renamed = type("TokenNorms", (Analyzer,), {"name": "cell_norm", "metrics": ("norm",), "__module__": "__main__"})
    _registry.register_analyzer(first)
    with pytest.warns(UserWarning, match=r"^analysis 'cell_norm': TokenNorms replaces TokenNorm, registered earlier "
                                         r"under that name in __main__$"):
        _registry.register_analyzer(renamed)
    assert type(get_analyzer("cell_norm")) is renamed


def test_an_annotation_naming_what_its_module_lacks_is_one_line():
    """'Sequence[int] | None' without importing Sequence: get_type_hints' NameError traceback."""
    namespace: dict = {}
    exec("def __init__(self, layers: 'Sequence[int] | None' = None): pass", namespace)
    bad = type("Bad", (Analyzer,), {"name": "bad", "metrics": ("x",), "__init__": namespace["__init__"]})
    with pytest.raises(TypeError, match=r"^Bad: the annotations of __init__ cannot be read \(NameError: name "
                                        r"'Sequence' is not defined\); import what they name"):
        _registry.register_analyzer(bad)


@pytest.mark.parametrize("signature, message", [
    ("def __init__(self, width): pass", r"Bad: parameter 'width' needs a default"),
    ("def __init__(self, seed=0): pass", r"Bad: parameter 'seed' would overwrite the run's protocol entry of "
                                          r"that name; call it e.g. bad_seed"),
    ("def __init__(self, scale=1.0): pass", r"Bad: parameter 'scale' needs an annotation of bool, int, float, "
                                             r"str, a Literal of choices or Sequence\[int\] \| None"),
    ("def __init__(self, k: int = 0.5): pass", r"Bad: parameter 'k' defaults to 0.5, which its annotation does "
                                                r"not take"),
    ("def __init__(self, how: 'Literal[\"a\", \"b\"]' = 'c'): pass", r"parameter 'how' defaults to 'c'"),
])
def test_parameters_need_defaults_and_names_the_protocol_does_not_use(signature, message):
    """A parameter without a default broke `vitprobe analyses`; one named seed overwrote the
    run's seed in that result's protocol."""
    namespace: dict = {"Literal": __import__("typing").Literal}
    exec(signature, namespace)  # noqa: S102 - a test-made constructor
    cls = type("Bad", (Analyzer,), {"name": "bad", "metrics": ("x",), "__init__": namespace["__init__"]})
    with pytest.raises(TypeError, match=message):
        _registry.register_analyzer(cls)
    assert "bad" not in _registry.list_analyzers()


def test_the_reserved_names_are_those_the_run_writes():
    from vitprobe.analysis import prepare_analysis

    import timm

    model = timm.models.vision_transformer.VisionTransformer(img_size=32, patch_size=8, embed_dim=16, depth=1,
                                                             num_heads=2, num_classes=0)
    plan = prepare_analysis(model, "synthetic:4", ["fourier"], 4, "cpu", 0, 0)
    runner_keys = set(plan.protocol) | {"analysis", "std", "value_units"}
    assert runner_keys <= set(_registry.RESERVED_PARAMS)


def test_metrics_are_a_tuple_of_names_and_each_parameter_is_kept_under_its_name():
    """A string `metrics` passed as a tuple of its letters; a parameter stored as self._scale
    failed after the whole pass, when the protocol read self.scale."""
    with pytest.raises(TypeError, match=r"Bad needs a class attribute `metrics`, a tuple .* got 'mass'"):
        _registry.register_analyzer(type("Bad", (Analyzer,), {"name": "bad", "metrics": "mass"}))
    with pytest.raises(TypeError, match=r'Bad.grid_bound is "pixels", "patches" or None .* got True'):
        _registry.register_analyzer(type("Bad", (Analyzer,), {"name": "bad", "metrics": ("mass",), "grid_bound": True}))
    for outcome, named in (("flat", ("mass",)), ("even", ("area",))):  # not an outcome; not a metric
        with pytest.raises(TypeError, match=rf"Bad.uninformative_when maps an outcome .* got '{outcome}' -> "):
            _registry.register_analyzer(type("Bad", (Analyzer,), {
                "name": "bad", "metrics": ("mass",), "outcome_keys": ("even",),
                "uninformative_when": {outcome: (named, "why")}}))
    for named in (("area",), "mass", ()):  # not a metric; not a tuple; none
        with pytest.raises(TypeError, match=r"Bad.keys_of_metrics maps a protocol key to a tuple of its metrics"):
            _registry.register_analyzer(type("Bad", (Analyzer,), {
                "name": "bad", "metrics": ("mass",), "keys_of_metrics": {"k": named}}))

    class Hidden(Analyzer):
        name = "hidden_scale"
        metrics = ("mass",)

        def __init__(self, scale: float = 1.0) -> None:
            super().__init__()
            self._scale = scale

    _registry.register_analyzer(Hidden)
    with pytest.raises(TypeError, match=r"Hidden does not keep its parameter 'scale' as self.scale"):
        get_analyzer("hidden_scale", scale=2.0)


def test_a_failure_inside_an_analyzer_names_it(monkeypatch):
    """A bug of one's own analyzer (here a shape it did not expect) used to end in a bare
    traceback that never said which analysis failed, nor on which images."""
    import sys

    import timm

    import vitprobe
    from vitprobe.analyzers.base import LayerAnalyzer

    @_registry.register_analyzer
    class Broken(LayerAnalyzer):
        """Fails on its third image."""

        name = "broken_norm"
        site_kind = "tokens"
        metrics = ("norm",)

        def _update(self, batch):
            if int(batch["index"].max()) >= 2:
                raise ValueError("size of tensor a (5) must match")

    model = timm.models.vision_transformer.VisionTransformer(img_size=32, patch_size=8, embed_dim=16, depth=1,
                                                             num_heads=2, num_classes=0)
    with pytest.raises(ValueError, match="must match") as failed:
        vitprobe.analyze(model, "synthetic:4", analyses=["broken_norm", "fourier"], batch_size=2, progress=False)
    if sys.version_info >= (3, 11):  # exception notes
        assert failed.value.__notes__ == [f"vitprobe: raised in analysis 'broken_norm' ({__name__}), update() on "
                                          "images 2..3 of the pass"]


def test_an_analysis_of_ones_own_declares_what_it_found_apart_from_how_it_measured():
    """A plugin's count of what it found made compare say the runs were set up differently."""
    from vitprobe.comparability import setting_differences
    from vitprobe.plots.style import protocol_caption

    @_registry.register_analyzer
    class Counting(Analyzer):
        """Counts images below a threshold."""

        name = "counting"
        metrics = ("below",)
        outcome_keys = ("images_below",)

        def __init__(self, threshold: float = 0.5) -> None:
            super().__init__()
            self.threshold = threshold

    runs = [{"analysis": "counting", "threshold": 0.5, "images_below": n} for n in (6, 0)]
    assert setting_differences(runs, ["a", "b"]) == []
    assert setting_differences([{**runs[0], "threshold": 0.4}, runs[1]], ["a", "b"]) == ["threshold 0.4 (a) | 0.5 (b)"]
    assert "images below 6 (a) | 0 (b)" in protocol_caption(runs, labels=["a", "b"])


def test_a_metric_is_read_from_the_first_named_analysis_that_holds_it():
    """A plugin whose table also holds 'nmi': the order in which a recipe names its analyses decides."""
    class OwnNMI(Analyzer):
        name = "own_nmi"
        metrics = ("nmi",)

    _registry.register_analyzer(OwnNMI)
    assert _registry.analysis_giving("nmi", ["fourier", "own_nmi", "attention_nmi"]) == "own_nmi"
    assert _registry.analysis_giving("nmi", ["attention_nmi", "own_nmi"]) == "attention_nmi"
    assert _registry.analysis_giving("knn_top1", ["fourier", "attention_nmi"]) is None


def test_a_metrics_protocol_keeps_the_keys_that_concern_it_and_drops_those_of_other_metrics():
    protocol = {"analysis": "token_similarity", "layers": [1, 2], "spectrum_fraction": 0.5, "spectrum_images": 12}
    token = _registry.protocol_of_metric(protocol, "log_singular_value_token")
    assert token == protocol
    assert _registry.protocol_of_metric(protocol, "token_cosine") == {"analysis": "token_similarity", "layers": [1, 2]}
    other = {"analysis": "fourier", "spectrum_fraction": 0.5}  # another analysis declares no such keys
    assert _registry.protocol_of_metric(other, "delta_log_amplitude") == other

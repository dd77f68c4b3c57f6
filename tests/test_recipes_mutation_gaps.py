"""Recipe checks and reproduce's publishing that a mutation round found untested (docs/recipes.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from test_recipes import _claim, _write
from test_reproduce import _small_recipe

from vitprobe.errors import ConfigError, OutputExistsError
from vitprobe.recipes import RECIPE_DIR, load_recipe
from vitprobe.reproduce import reproduce


def _without(tmp_path: Path, key: str) -> Path:
    """The recipe of ``_write`` with its top-level ``key`` removed."""
    path = _write(tmp_path)
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    del raw[key]
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("key, message", [
    ("analyses", r"recipe.yaml: missing required key 'analyses'$"),
    ("models", r"recipe.yaml: give either `models` or `sweep`, exactly one$"),
])
def test_a_required_key_left_out_is_one_line(tmp_path: Path, key: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_recipe(_without(tmp_path, key))


@pytest.mark.parametrize("changes, message", [
    ({"quick": {"models": {}}}, r"quick: unknown keys \['models'\]"),
    ({"name": "_study"}, r"name '_study' names an output folder"),
    ({"name": ".study"}, r"name '.study' names an output folder"),
    ({"models": {"a": {"label": "A"}}}, r"model 'a' needs exactly one of train, checkpoint, random_like"),
    ({"models": {"a": {"checkpoint": ""}}}, r"model 'a': checkpoint must be the path of a file, got ''"),
    ({"models": {"a": {"train": "no_such_train.yaml"}}},
     r"recipe.yaml: model 'a': training config .*no_such_train.yaml does not exist"),
    ({"models": {"a": {"train": {"method": "mae", "num_workers": 2}}}},
     r"model 'a': num_workers is set by vitprobe reproduce \(--num-workers\); drop it"),
])
def test_more_documented_refusals(tmp_path: Path, changes: dict, message: str) -> None:
    """Unknown quick: keys, names that are no safe folder, a model without one source, and
    training options reproduce sets itself are each refused in one line."""
    with pytest.raises(ConfigError, match=message) as err:
        load_recipe(_write(tmp_path, claims=[], **changes))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("claim, message", [
    (["knn", "t"], r"claim 1: a claim is a mapping of figure, text and check, got \['knn', 't'\]"),
    ({**_claim(), "note": "x"}, r"claim 1: each claim needs figure, text and check; unknown keys \['note'\]"),
    ({**_claim(), "text": "  "}, r"claim 1: claim text must be the sentence the claim tests, got '  '"),
    (_claim(layer="last"), r"claim 1: claim check has unknown keys \['layer'\]"),
    ({**_claim(), "check": {"metric": "knn_top1", "label": "shape", "peak_inside": "yes"}},
     r"claim 1: claim check peak_inside is true or false, got 'yes'"),
    (_claim(min_difference=float("inf")), r"claim 1: claim check min_difference must be a number >= 0"),
])
def test_a_malformed_claim_is_one_line(tmp_path: Path, claim: object, message: str) -> None:
    """A claim's shape, text and check keys are checked as documented, not left to fail later."""
    with pytest.raises(ConfigError, match=message):
        load_recipe(_write(tmp_path, claims=[claim]))


def test_only_lam_can_be_swept(tmp_path: Path) -> None:
    sweep = {"parameter": "alpha", "values": [0.0, 1.0],
             "train": str(RECIPE_DIR / "train" / "hybrid_tiny_synthetic.yaml")}
    path = _without(tmp_path, "models")
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    path.write_text(yaml.safe_dump({**raw, "sweep": sweep, "claims": []}))
    with pytest.raises(ConfigError, match=r"only the hybrid weight `lam` can be swept"):
        load_recipe(path)


def test_the_title_defaults_to_the_name(tmp_path: Path) -> None:
    assert load_recipe(_without(tmp_path, "title")).title == "cl_vs_mim"
    assert load_recipe(_write(tmp_path, title="Mine")).title == "Mine"


def test_seed_zero_is_a_change_like_any_other_seed(tmp_path: Path) -> None:
    """--seed 0 replaces each training config's own seed, so the report names it."""
    assert load_recipe(_write(tmp_path, quick={}), seed=0).changes == ["--seed 0"]


def test_reconstructions_are_drawn_only_for_the_gmml_models(tmp_path: Path) -> None:
    models = {"gmml": {"train": {"method": "gmml", "preset": "tiny"}},
              "mae": {"train": {"method": "mae", "preset": "tiny"}}}
    recipe = load_recipe(_write(tmp_path, models=models, claims=[], figures=["reconstructions"]))
    assert recipe.extra_figures == ["reconstructions_gmml"]


@pytest.mark.slow
def test_a_file_put_in_the_results_during_a_run_is_not_deleted(tmp_path: Path, monkeypatch) -> None:
    """The folder is checked again before the new results replace the old: a file that
    appeared there during the run is refused, and the new results are kept aside."""
    import vitprobe.analysis

    out, recipe = tmp_path / "out", _small_recipe(tmp_path, "a b")
    reproduce([str(recipe)], out, progress=False)
    root = out / "small"
    real = vitprobe.analysis.analyze

    def puts_a_file_there(*args, **kwargs):
        (root / "runs" / "notes.txt").write_text("mine")
        return real(*args, **kwargs)

    monkeypatch.setattr(vitprobe.analysis, "analyze", puts_a_file_there)
    with pytest.raises(OutputExistsError, match=r"holds runs/notes.txt, .*; the new results are kept in "):
        reproduce([str(recipe)], out, progress=False)
    assert (root / "runs" / "notes.txt").read_text() == "mine" and (root / "runs" / "a" / "run.json").is_file()


@pytest.mark.slow
def test_verdicts_name_models_by_label_and_keep_detail_and_protocol(tmp_path: Path) -> None:
    """A model's label is its verdict name; verdicts.json holds each claim's detail and protocol."""
    import json

    path = _small_recipe(tmp_path, "a b")
    recipe = json.loads(path.read_text())
    recipe["models"]["a"]["label"], recipe["models"]["b"]["label"] = "Model Alpha", "Model Beta"
    recipe["claims"] = [{"figure": "attention_distance", "text": "b attends farther",
                         "check": {"metric": "attention_distance_px", "greater": "b", "than": "a"}}]
    path.write_text(json.dumps(recipe))
    [report] = reproduce([str(path)], tmp_path / "out", progress=False)
    [verdict] = json.loads((report.parent / "verdicts.json").read_text())
    assert "Model Alpha" in verdict["detail"] and "Model Beta" in verdict["detail"]
    assert verdict["protocol"].startswith("dataset synthetic:16")

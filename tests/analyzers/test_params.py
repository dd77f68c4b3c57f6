"""Analysis parameters are checked against their annotations, from Python and from --param."""

from __future__ import annotations

import pytest

from vitprobe.analyzers import get_analyzer
from vitprobe.errors import ConfigError


@pytest.mark.parametrize("name, params, attribute, expected", [
    ("attention_distance", {"layers": 3}, "layers", [3]),
    ("attention_distance", {"layers": "1, 2"}, "layers", [1, 2]),
    ("attention_distance", {"layers": (2, 4)}, "layers", [2, 4]),
    ("attention_distance", {"layers": None}, "layers", None),
    ("knn", {"T": 1}, "T", 1.0),
    ("knn", {"pooling": "mean", "final_norm": True}, "pooling", "mean"),
])
def test_values_that_fit_are_brought_to_one_form(name, params, attribute, expected) -> None:
    value = getattr(get_analyzer(name, **params), attribute)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("name, params, message", [
    ("linear_probe", {"final_norm": "no"}, "final_norm takes true|false, got 'no'"),
    ("linear_probe", {"final_norm": 0}, "final_norm takes true|false, got 0"),
    ("attention_distance", {"layers": [1.5]}, "layers takes block numbers"),
    ("attention_distance", {"layers": True}, "layers takes block numbers"),
    ("attention_distance", {"layers": "1,two"}, "layers takes block numbers"),
    ("knn", {"k": 2.5}, "k takes integer, got 2.5"),
    ("knn", {"pooling": "avg"}, "pooling takes cls|mean, got 'avg'"),
    ("attention_jaccard", {"keep_mass": "0.6"}, "keep_mass takes finite number"),
    ("knn", {"T": float("nan")}, "T takes finite number, got nan"),
    ("knn", {"T": float("inf")}, "T takes finite number, got inf"),
    ("attention_distance", {"layers": "[2,3"}, r"layers takes block numbers: \[1,6,12\]"),
    ("attention_distance", {"layers": "2,3]"}, "layers takes block numbers"),
])
def test_values_of_the_wrong_kind_are_one_line_errors(name, params, message) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        get_analyzer(name, **params)
    assert "\n" not in str(err.value) and f"--param {name}." in str(err.value)


@pytest.mark.parametrize("name, params, cli, python", [
    ("knn", {"pooling": "avg"}, "--param knn.pooling=cls", "analyzer_params={'knn': {'pooling': 'cls'}}"),
    ("linear_probe", {"final_norm": "yes"}, "--param linear_probe.final_norm=true",
     "analyzer_params={'linear_probe': {'final_norm': True}}"),
    ("attention_nmi", {"layers": "[2,3"}, "--param attention_nmi.layers=[1,6,12]",
     "analyzer_params={'attention_nmi': {'layers': [1, 6, 12]}}"),
])
def test_a_wrong_kind_is_shown_as_the_command_line_and_python_write_it(name, params, cli, python) -> None:
    with pytest.raises(ConfigError) as err:
        get_analyzer(name, **params)
    assert str(err.value).endswith(f"e.g. {cli} (Python: {python})")


@pytest.mark.parametrize("name, params, message", [
    ("knn", {"heldout_fraction": 1.5}, "analysis 'knn': heldout_fraction=1.5 must lie strictly between"),
    ("linear_probe", {"heldout_fraction": 0.0}, "analysis 'linear_probe': heldout_fraction=0.0"),
    ("attention_jaccard", {"keep_mass": 0.0}, r"analysis 'attention_jaccard': keep_mass=0.0 must lie in \(0, 1\]; "
                                              r"DINO uses 0.6 \(--param attention_jaccard.NAME=VALUE"),
    ("attention_jaccard", {"num_artifacts": -1}, r"analysis 'attention_jaccard': num_artifacts must be a whole "
                                                 r"number >= 0, got -1"),
])
def test_values_out_of_range_name_their_analysis(name, params, message) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        get_analyzer(name, **params)
    assert "\n" not in str(err.value)


def test_the_listing_says_what_each_parameter_takes(capsys) -> None:
    from vitprobe.cli import main

    assert main(["analyses"]) == 0
    listing = capsys.readouterr().out
    assert "``" not in listing and "the protocol holds even_attention_px," in listing  # docstrings' reST, as text
    assert 'pooling = "cls" (cls|mean)' in listing and "final_norm = false (true|false)" in listing
    assert "layers = null (block numbers" in listing and "k = 20 (integer)" in listing
    per_analysis = listing.split("\nattention_nmi\n")[1].split("\nfourier\n")
    assert "layers = null (block numbers" in per_analysis[0] and "; from 1, the first block)" in per_analysis[0]
    assert "; 0 is the patch embedding)" in per_analysis[1].split("\nknn\n")[0]



def test_an_analyzer_shows_its_class_and_parameters() -> None:
    """get_analyzer('knn') in a notebook printed only <...KNN object at 0x...>."""
    assert repr(get_analyzer("knn", k=5)) == ("KNN(layers=None, pooling='cls', final_norm=False, heldout_fraction=0.2, "
                                              "split_seed=0, k=5, T=0.07)")

"""Checks that close gaps found by mutation testing of results, claims and plots: each asserts a
value derived from the definitions (mean, standard error, a 2-SE decision, atomic writes) on
small hand-built tables."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from tables import PROTOCOL, make_results

from vitprobe.claims import evaluate, row_standard_error, summary_value
from vitprobe.plots import draw
from vitprobe.results import Result, Run, compare


def _three_heads() -> Result:
    """One layer of three heads whose mean (1.0) differs from their median (0.0)."""
    table = pd.DataFrame({"metric": "attention_distance_px", "layer": 1, "head": [0, 1, 2],
                          "value": [0.0, 0.0, 3.0], "std": 0.5, "n": 4})
    return Result("attention_distance", table, dict(PROTOCOL))


def test_a_row_of_one_image_has_its_std_as_standard_error():
    """std / sqrt(1) is the std itself; an accuracy over one image has the plus-four error."""
    assert row_standard_error({"metric": "nmi", "value": 0.5, "std": 0.2, "n": 1}) == pytest.approx(0.2)
    shrunk = (1.0 * 1 + 2) / 5  # 1 of 1 right, plus four
    expected = 100 * math.sqrt(shrunk * (1 - shrunk) / 5)
    assert row_standard_error({"metric": "knn_top1", "value": 100.0, "n": 1}) == pytest.approx(expected)


def test_a_claims_value_is_the_mean_of_its_layers_not_their_median():
    """Layers valued 0, 0, 3 read as 1."""
    table = pd.DataFrame({"metric": "nmi", "layer": [1, 2, 3], "value": [0.0, 0.0, 3.0], "std": 0.3, "n": 9})
    estimate = summary_value({"t": table}, {"metric": "nmi", "layers": "all"})
    assert estimate.value == pytest.approx(1.0) and estimate.se == pytest.approx(0.1)


def test_one_side_without_a_standard_error_is_decided_only_by_min_difference():
    """A spread on one side only gives no combined error: undecided, or decided by min_difference."""
    spread = pd.DataFrame({"metric": "m", "layer": [1], "value": [2.0], "std": [0.1], "n": [100]})
    bare = pd.DataFrame({"metric": "m", "layer": [1], "value": [1.0]})
    tables = {"a": {"x": spread}, "b": {"x": bare}}
    check = {"metric": "m", "layers": "all", "greater": "a", "than": "b"}
    assert evaluate(check, tables, {}).agrees is None
    assert evaluate({**check, "min_difference": 0.5}, tables, {}).agrees is True
    assert evaluate({**check, "min_difference": 1.5}, tables, {}).agrees is None


def test_a_summary_of_several_heads_is_their_mean():
    """The mean over three heads (0, 0, 3) is 1, with the mean of their errors."""
    row = Run([_three_heads()]).summary().iloc[0]
    assert row["value"] == pytest.approx(1.0) and row["se"] == pytest.approx(0.5 / 2)


def test_a_summary_protocol_leaves_the_dataset_to_its_own_column():
    """The dataset has a column of its own; the protocol column does not repeat it."""
    summary = Run(make_results(), label="r").summary()
    assert not summary["protocol"].str.contains("synthetic").any()
    probe = summary[summary["analysis"] == "linear_probe"]["protocol"]
    assert probe.str.contains("pooling cls").all()


def test_the_per_head_line_and_the_axis_top_follow_the_mean_and_the_highest_dot():
    """The line is the mean over heads; the axis runs from 0 to 5% above the highest dot."""
    ax = draw("attention_distance", [("a", _three_heads())]).axes[0]
    assert list(ax.lines[0].get_ydata()) == pytest.approx([1.0])
    assert ax.get_ylim() == pytest.approx((0.0, 1.05 * 3.0))


def test_an_accuracy_band_is_one_standard_error_either_side():
    """At 50% over 8 held-out images the band spans 50 -+ 100 sqrt(0.25 / 12)."""
    table = pd.DataFrame({"metric": "knn_top1", "layer": [1, 2], "label": "shape", "value": 50.0, "n": 8})
    fig = draw("knn", [("a", Result("knn", table, dict(PROTOCOL)))])
    [band] = fig.axes[0].collections
    ys = band.get_paths()[0].vertices[:, 1]
    se = 100 * math.sqrt(0.5 * 0.5 / 12)
    assert (ys.min(), ys.max()) == pytest.approx((50 - se, 50 + se))


def test_a_per_run_point_has_the_mean_std_of_its_rows_as_its_bar():
    """Rows of std 0.1 and 0.3 around a mean 0.6 draw a bar from 0.4 to 0.8."""
    flat = Result("flat", pd.DataFrame({"metric": "s", "value": [0.5, 0.7], "std": [0.1, 0.3]}), {})
    ax = draw("flat", [("a", flat)]).axes[0]
    [bar] = ax.containers[0].lines[2]
    assert np.asarray(bar.get_segments()[0])[:, 1] == pytest.approx([0.4, 0.8])


def test_a_table_that_fails_part_way_leaves_the_saved_one_whole(tmp_path):
    """Overwriting a result whose CSV cannot be encoded keeps the previous CSV intact."""
    knn = make_results()["knn"]
    knn.save(tmp_path)
    before = (tmp_path / "knn.csv").read_bytes()
    broken = Result("knn", knn.table.assign(note="\ud800"), knn.protocol)
    with pytest.raises(UnicodeEncodeError):
        broken.save(tmp_path, overwrite=True)
    assert (tmp_path / "knn.csv").read_bytes() == before


def test_a_protocol_is_written_with_sorted_keys(tmp_path):
    """The same protocol in another key order gives the same bytes."""
    table = pd.DataFrame({"metric": "s", "value": [0.5]})
    Result("one", table, {"b": 1, "a": 2}).save(tmp_path / "x")
    Result("one", table, {"a": 2, "b": 1}).save(tmp_path / "y")
    text = (tmp_path / "x" / "one.json").read_text()
    assert text == (tmp_path / "y" / "one.json").read_text() and text.index('"a"') < text.index('"b"')


def test_a_comparison_lists_each_runs_label_and_checkpoint(tmp_path):
    """runs.json names every compared run with its checkpoint, in order."""
    results = make_results()
    runs = [Run([results["knn"]], {"sha256": sha}, label=name) for name, sha in (("a", "11"), ("b", "22"))]
    compare(runs, tmp_path / "cmp")
    listed = json.loads((tmp_path / "cmp" / "runs.json").read_text())
    assert listed == [{"label": "a", "checkpoint": {"sha256": "11"}}, {"label": "b", "checkpoint": {"sha256": "22"}}]

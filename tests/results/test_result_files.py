"""Result and Run: files written, exact round-trip, figures for every table shape, report."""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from tables import DEPTH, HEADS, make_results

from vitprobe.errors import ConfigError, OutputExistsError
from vitprobe.plots import draw
from vitprobe.results import Result, Run, compare


@pytest.fixture(scope="module")
def results():
    return make_results()


def test_table_columns_get_contract_dtypes(results):
    table = results["attention_nmi"].table
    assert str(table["head"].dtype) == "Int64" and str(table["layer"].dtype) == "Int64"
    assert table.loc[table["metric"] == "head_diversity_jsd", "head"].isna().all()
    assert table["value"].dtype == np.float64


def test_table_columns_come_in_the_documented_order():
    shuffled = pd.DataFrame({"n": [3], "rank": [1], "value": [0.5], "layer": [2], "metric": ["m"], "extra": ["x"]})
    assert list(Result("x", shuffled, {}).table.columns) == ["metric", "layer", "rank", "value", "n", "extra"]


def test_recorded_values_are_made_json_safe():
    from fractions import Fraction
    from pathlib import Path

    from vitprobe.json_safe import jsonable

    value = {1: (np.float32(0.5), [np.int64(3), None]), "path": Path("a/b"), "array": np.arange(3),
             "other": Fraction(1, 3), "flag": True, "name": "x"}
    expected = {"1": [0.5, [3, None]], "path": "a/b", "array": [0, 1, 2], "other": "1/3", "flag": True, "name": "x"}
    safe = jsonable(value)
    assert safe == expected and json.loads(json.dumps(safe, sort_keys=True)) == expected
    assert type(safe["1"][0]) is float and type(safe["1"][1][0]) is int


def test_table_without_value_is_rejected():
    with pytest.raises(ValueError, match="value"):
        Result("x", pd.DataFrame({"metric": ["a"]}), {})


def test_result_save_load_round_trip(tmp_path, results):
    original = results["attention_jaccard"]
    assert original.save(tmp_path) == tmp_path / "attention_jaccard.csv"
    with pytest.raises(OutputExistsError, match="pass overwrite=True"):
        original.save(tmp_path)
    original.save(tmp_path, overwrite=True)
    for ext in ("csv", "json", "png", "svg", "npz"):
        assert (tmp_path / f"attention_jaccard.{ext}").is_file(), ext
    loaded = Result.load(tmp_path, "attention_jaccard")
    pd.testing.assert_frame_equal(loaded.table, original.table)
    assert loaded.protocol == original.protocol
    for key, array in original.artifacts.items():
        np.testing.assert_array_equal(loaded.artifacts[key], array)
        assert loaded.artifacts[key].dtype == array.dtype
    again = tmp_path / "again"
    loaded.save(again)
    assert (again / "attention_jaccard.csv").read_bytes() == (tmp_path / "attention_jaccard.csv").read_bytes()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]
    by_path = Result.load(original.save(tmp_path, overwrite=True))  # the path save returned
    pd.testing.assert_frame_equal(by_path.table, original.table)
    assert by_path.name == "attention_jaccard" and by_path.protocol == original.protocol
    with pytest.raises(ConfigError, match=r"name the result, Result\.load\(folder, name\), or pass the <name>\.csv"):
        Result.load(tmp_path)


def test_no_npz_without_artifacts(tmp_path, results):
    results["fourier"].save(tmp_path)
    assert not (tmp_path / "fourier.npz").exists()


def test_load_missing_result_is_one_line_error(tmp_path):
    with pytest.raises(ConfigError, match="no such result") as info:
        Result.load(tmp_path, "fourier")
    assert "\n" not in str(info.value)


def _cut(path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize("damage,file,message", [
    (lambda f: _cut(f / "run.json", 0.5), "run.json", r"cannot read it \(JSONDecodeError"),
    (lambda f: _cut(f / "knn.json", 0.5), "knn.json", r"cannot read it \(JSONDecodeError"),
    (lambda f: (f / "run.json").write_text("[1, 2]"), "run.json", "holds a JSON list, not the dict"),
    (lambda f: (f / "run.json").write_text('{"format_version": 1}'), "run.json", "'results' is None"),
    (lambda f: (f / "run.json").write_text('{"format_version": 99, "results": []}'), "run.json",
     "format_version 99, and this vitprobe reads 1..1"),
    (lambda f: (f / "knn.csv").write_text(""), "knn.csv", "is empty"),
    (lambda f: _cut(f / "knn.csv", 0.7), "knn.csv", r"ends mid-line \(cut short\)"),
    (lambda f: (f / "knn.csv").write_text("a,b\n1,2\n"), "knn.csv", r"table lacks columns \['metric', 'value'\]"),
    (lambda f: (f / "knn.json").unlink(), "knn.json", r"missing \(the protocol of knn.csv\)"),
    (lambda f: (f / "knn.csv").unlink(), "knn.csv", r"missing \(run.json lists knn\)"),
    (lambda f: _cut(f / "attention_jaccard.npz", 0.5), "attention_jaccard.npz", "cannot read it"),
])
def test_a_damaged_run_folder_is_a_one_line_error_naming_the_file(tmp_path, results, damage, file, message):
    folder = tmp_path / "run"
    Run(results, label="r").save(folder)
    damage(folder)
    with pytest.raises(ConfigError, match=message) as info:
        Run.load(folder)
    text = str(info.value)
    assert "\n" not in text and text.startswith(str(folder / file))
    assert "incomplete or damaged" in text or "format_version" in text


@pytest.mark.parametrize("name", list(make_results()))
def test_every_table_shape_draws_for_one_and_two_runs(name, results):
    other = make_results(seed=1)[name]
    for items in ([("run-a", results[name])], [("run-a", results[name]), ("run-b", other)]):
        fig = draw(name, items)
        assert isinstance(fig, Figure)
        assert "synthetic:8 (n=8)" in fig._suptitle.get_text()
        legends = legend_texts(fig)
        for label, _ in items:
            assert any(label in text for text in legends), (name, legends)


def test_run_load_of_a_folder_of_several_runs_points_to_load_runs(tmp_path, results):
    import vitprobe

    load_runs = vitprobe.load_runs  # a top-level name, as the message gives it
    for label in ("a", "b"):
        Run(results, label=label).save(tmp_path / label)
    with pytest.raises(ConfigError, match=r"holds its runs in sub-folders, one per checkpoint .*load them all with vitprobe.load_runs\(folder\)"):
        Run.load(tmp_path)
    assert [run.label for run in load_runs(tmp_path)] == ["a", "b"]


def legend_texts(fig: Figure) -> list[str]:
    """The entries of a figure's legends: its own (below the panels) and any of a panel."""
    boxes = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
    return [t.get_text() for box in boxes for t in box.get_texts()]


@pytest.mark.parametrize("name", [n for n in make_results() if n != "attention_jaccard"])
def test_legends_sit_below_the_panels_and_never_on_the_data(name, results):
    """Curves of several runs are named by one figure legend outside every panel (Jaccard's
    bars keep theirs in the bar panel, which has room above the bars)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    items = [(f"run-{i}", make_results(seed=i)[name]) for i in range(4)]
    fig = draw(name, items)
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    [legend] = fig.legends
    assert not any(ax.get_legend() for ax in fig.axes)
    box = legend.get_window_extent(renderer)
    for ax in fig.axes:  # nor on a panel's tick labels or axis labels
        assert not box.overlaps(ax.get_tightbbox(renderer)), (name, ax.get_title())


def test_figure_carries_analysis_protocol(results):
    figure = draw("attention_jaccard", [("a VisionTransformer label", results["attention_jaccard"])])
    title = figure._suptitle.get_text()
    assert "threshold 0.6" in title and f"layer {DEPTH}" in title
    assert title.startswith("Last-block CLS attention masks") and "DINO" not in title  # any model's masks
    rows = [ax.get_ylabel() for ax in figure.axes[1:] if ax.get_ylabel()]
    assert rows and all(len(line) <= 14 for row in rows for line in row.split("\n"))  # a long label wraps
    assert "pooling cls" in draw("linear_probe", [("a", results["linear_probe"])])._suptitle.get_text()


@pytest.mark.parametrize("name", list(make_results()))
def test_a_long_caption_is_wrapped_inside_the_saved_figure(name, results):
    """A long data path and runs whose datasets differ: every line of the title lies within
    the figure's width as saved (a long part was cut at both edges)."""
    def on(result: Result, data: str) -> Result:
        return Result(name, result.table, {**result.protocol, "dataset": data}, result.artifacts)

    long_path = "folder:/data/" + "/".join(["a-very-long-folder-name"] * 6) + "/val"
    fig = draw(name, [("moco", on(results[name], long_path)), ("simmim", on(make_results(seed=1)[name], "synthetic:48:3"))])
    fig.canvas.draw()
    box = fig._suptitle.get_window_extent()
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width and box.y1 <= fig.bbox.height, (box, fig.bbox)
    assert "a-very-long-folder-name" in fig._suptitle.get_text()


@pytest.mark.parametrize("name, label", [("attention_distance", "depth (block)"), ("attention_nmi", "depth (block)"),
                                         ("token_similarity", "depth (0 = embedding)"), ("knn", "depth (0 = embedding)")])
def test_a_depth_axis_says_whether_it_starts_at_the_embedding(results, name, label):
    labels = {ax.get_xlabel() for ax in draw(name, [("a", results[name])]).axes if "depth" in ax.get_xlabel()}
    assert labels == {label}


def test_a_run_without_a_finite_value_is_named_on_the_figure(results):
    """A probe whose held-out split was empty has NaN everywhere: the figure says so."""
    probe = results["knn"]
    empty = Result("knn", probe.table.assign(value=np.nan, std=np.nan), probe.protocol)

    def texts(fig: Figure) -> str:
        return " ".join(t.get_text() for ax in fig.axes for t in ax.texts)

    assert "no finite value" not in texts(draw("knn", [("moco", probe)]))
    assert "no finite value for mae" in texts(draw("knn", [("moco", probe), ("mae", empty)]))


def test_jaccard_bars_of_runs_with_different_head_counts_sit_over_their_own_names(results):
    two = results["attention_jaccard"]
    three_rows = pd.concat([two.table, pd.DataFrame([{"metric": "jaccard", "head": HEADS, "value": 0.5, "std": 0.1, "n": 4}])])
    three = Result("attention_jaccard", three_rows, two.protocol)
    bars_ax = draw("attention_jaccard", [("two", two), ("three", three)]).axes[0]
    names = [t.get_text() for t in bars_ax.get_xticklabels()]
    assert names == [f"h{h}" for h in range(HEADS + 1)] + ["best", "union"]
    for container, result in zip(bars_ax.containers, (two, three)):
        for bar in container:  # the bar's centre, shifted by its run, rounds to its name's tick
            name = names[round(bar.get_x() + bar.get_width() / 2)]
            table = result.table
            if name.startswith("h"):
                rows = table[(table["metric"] == "jaccard") & (table["head"] == int(name[1:]))]
            else:
                rows = table[table["metric"] == {"best": "jaccard_best_head", "union": "jaccard_union"}[name]]
            assert bar.get_height() == pytest.approx(float(rows["value"].iloc[0]))
    assert len(bars_ax.containers[0]) == HEADS + 2 and len(bars_ax.containers[1]) == HEADS + 3



def test_jaccard_bars_of_several_runs_sit_side_by_side_centred_on_their_name(results):
    jac = results["attention_jaccard"]
    ax = draw("attention_jaccard", [("a", jac), ("b", jac), ("c", jac)]).axes[0]
    assert ax.get_ylabel() == "Jaccard with ground truth"
    centres = np.array([[bar.get_x() + bar.get_width() / 2 for bar in container] for container in ax.containers])
    assert np.allclose(centres.mean(axis=0), np.arange(HEADS + 2))  # the runs' bars straddle their name's tick
    assert np.all(np.diff(centres, axis=0) > 0)  # in the order of the runs
    assert all(bar.get_width() <= 0.8 / 3 + 1e-9 for container in ax.containers for bar in container)  # no overlap


def test_jaccard_masks_upsample_by_nearest_neighbour():
    from vitprobe.plots.attention_jaccard import _upsample

    assert _upsample(np.arange(6).reshape(2, 3), 6).tolist() == [[0, 0, 1, 1, 2, 2]] * 3 + [[3, 3, 4, 4, 5, 5]] * 3


def test_jaccard_image_rows_show_each_kept_image_its_heads_attention_and_kept_patches(results):
    """Per kept image (at most MAX_IMAGES per run): the picture with its objects' outline (ignored
    pixels are no object), then per head the picture under that head's attention of that image,
    outlined where that head's kept patches are."""
    from vitprobe.plots.attention_jaccard import MAX_IMAGES, _upsample

    jac = results["attention_jaccard"]
    size, grid, count = 32, 4, MAX_IMAGES + 1
    patch = size // grid
    rng = np.random.default_rng(3)
    head_masks = np.zeros((count, HEADS, grid, grid), dtype=bool)
    for i in range(count):
        for h in range(HEADS):
            head_masks[i, h, (i + h) % grid, h] = True  # one patch, its own for each image and head
    masks = np.zeros((count, size, size), dtype=np.uint8)
    masks[:, :8, :8] = 1
    masks[:, 24:, :] = 255  # ignored: not an object
    artifacts = {"images": rng.integers(0, 255, (count, size, size, 3), dtype=np.uint8), "masks": masks,
                 "head_masks": head_masks, "head_attn": rng.random((count, HEADS, grid, grid)).astype(np.float32)}
    fig = draw("attention_jaccard", [("a", Result("attention_jaccard", jac.table, jac.protocol, artifacts))])
    bars, *cells = fig.axes
    assert bars.get_subplotspec().colspan == range(0, 1 + HEADS)  # the bars span the figure
    assert len(cells) == MAX_IMAGES * (1 + HEADS)
    for i in range(MAX_IMAGES):
        image_ax, *head_axes = cells[i * (1 + HEADS):(i + 1) * (1 + HEADS)]
        [image] = image_ax.get_images()
        np.testing.assert_array_equal(image.get_array(), artifacts["images"][i])
        outline = np.concatenate([path.vertices for c in image_ax.collections for path in c.get_paths()])
        assert outline[:, 0].max() < 8.5 and outline[:, 1].max() < 8.5  # the object alone
        for h, ax in enumerate(head_axes):
            picture, attention = ax.get_images()
            np.testing.assert_array_equal(picture.get_array(), artifacts["images"][i])
            np.testing.assert_array_equal(attention.get_array(), _upsample(artifacts["head_attn"][i, h], size))
            kept = np.concatenate([path.vertices for c in ax.collections for path in c.get_paths()])
            row, col = (i + h) % grid, h
            assert kept[:, 0].min() >= col * patch - 1 and kept[:, 0].max() <= (col + 1) * patch
            assert kept[:, 1].min() >= row * patch - 1 and kept[:, 1].max() <= (row + 1) * patch
            assert ax.get_title() == (f"head {h}" if i == 0 else "")  # the first image names the heads
        for ax in (image_ax, *head_axes):
            assert not len(ax.get_xticks()) and not len(ax.get_yticks())
    without_masks = {k: v for k, v in artifacts.items() if k != "masks"}
    fig = draw("attention_jaccard", [("a", Result("attention_jaccard", jac.table, jac.protocol, without_masks))])
    assert len(fig.axes) == 1 + MAX_IMAGES * (1 + HEADS) and not fig.axes[1].collections  # no outline to draw


def test_accuracy_curves_name_their_held_out_count_and_draw_one_standard_error(results):
    fig = draw("knn", [("a", results["knn"])])
    ax = fig.axes[0]
    assert legend_texts(fig) == ["a", "shape"] and ax.get_ylabel().endswith("(n=8 held out)")
    # runs held out on different data: each curve names its own count
    other = results["knn"].table.assign(n=5)
    fig = draw("knn", [("a", results["knn"]), ("b", Result("knn", other, results["knn"].protocol))])
    assert legend_texts(fig) == ["a · shape (n=8 held out)", "b · shape (n=5 held out)"]
    assert "held out" not in fig.axes[0].get_ylabel()
    [band] = ax.collections
    table = results["knn"].table.sort_values("layer")
    shrunk = (table["value"].to_numpy() / 100 * 8 + 2) / 12  # Agresti-Coull: 2 right, 2 wrong added
    upper = band.get_paths()[0].vertices[:, 1].max()
    assert upper == pytest.approx(min(100.0, max(table["value"] + 100 * np.sqrt(shrunk * (1 - shrunk) / 12))))


def test_accuracy_bands_stop_at_0_and_100_and_one_layer_gets_its_own_tick(results):
    """1 SE around 100% of 8 images would reach 110%: the band is cut at what an accuracy can
    be. A single layer is drawn at its own integer tick, not at fractions of a block."""
    table = results["knn"].table
    ends = [table.assign(value=100.0), table.assign(value=0.0)]
    for table_at_end, limit in zip(ends, (100.0, 0.0)):
        [band] = draw("knn", [("a", Result("knn", table_at_end, results["knn"].protocol))]).axes[0].collections
        heights = band.get_paths()[0].vertices[:, 1]
        assert heights.min() >= 0.0 and heights.max() <= 100.0 and limit in heights
    one = table[table["layer"] == table["layer"].max()]
    ax = draw("knn", [("a", Result("knn", one, results["knn"].protocol))]).axes[0]
    assert list(ax.get_xticks()) == [float(one["layer"].iloc[0])]


def test_the_sweep_figure_bars_each_final_accuracy_by_its_standard_error(results):
    """The sweep's left panel, which its claim reads, had no error at all."""
    from vitprobe.metrics.accuracy import accuracy_standard_error
    from vitprobe.plots.sweep import draw_sweep

    probe = results["linear_probe"]
    last = probe.table["layer"].max()
    finals = (0.0, 100.0, 55.0)
    swept = [Result("linear_probe", probe.table.assign(value=value), probe.protocol) for value in finals]
    left = draw_sweep([0.0, 0.5, 1.0], swept).axes[0]
    assert "bars ±1 SE" in left.get_ylabel()
    shape = [c for c in left.containers if c.lines[0].get_linestyle() == "-"][0]  # the first label, solid
    lows, highs = (np.array([seg[0][1] for seg in shape.lines[2][0].get_segments()]),
                   np.array([seg[1][1] for seg in shape.lines[2][0].get_segments()]))
    n = int(probe.table.loc[probe.table["layer"] == last, "n"].max())
    se = accuracy_standard_error(np.array(finals), n, 100.0)
    assert np.allclose(lows, np.clip(np.array(finals) - se, 0, 100))
    assert np.allclose(highs, np.clip(np.array(finals) + se, 0, 100)) and highs.max() == 100.0
    assert lows.min() == 0.0  # 1 SE below 0% of 8 images is cut at 0 too


def _sweep_results(values: list[float]) -> list[Result]:
    """Probe tables whose accuracy tells its run, label and layer apart, rows shuffled."""
    probe = make_results()["linear_probe"]
    swept = []
    for i, _ in enumerate(values):
        table = probe.table.assign(value=10.0 * probe.table["layer"] + 20.0 * i + 5.0 * (probe.table["label"] == "texture"),
                                   n=10 + i)
        swept.append(Result("linear_probe", table.sample(frac=1.0, random_state=i), probe.protocol))
    return swept


def test_the_sweep_figure_plots_each_runs_table_by_label_and_value():
    """Left: each label's accuracy at the deepest layer against the swept value; right: a curve
    over depth per value and label, coloured as the legend's value and styled as its label."""
    from matplotlib.colors import to_rgba

    from vitprobe.plots.sweep import draw_sweep

    values = [0.0, 0.5, 1.0]
    swept = _sweep_results(values)
    fig = draw_sweep(values, swept)
    left, right = fig.axes
    assert left.get_xlabel() == "lambda (0 = pure MIM, 1 = pure CL)"
    assert right.get_xlabel() == "depth (0 = embedding)" and right.get_ylabel() == "top-1 accuracy (%)"
    assert fig._suptitle.get_text().startswith("Linear probe against the CL weight lambda")
    [legend] = fig.legends
    names = [t.get_text() for t in legend.get_texts()]
    assert names == ["shape", "texture", "lambda 0", "lambda 0.5", "lambda 1"]
    handles = dict(zip(names, legend.legend_handles))
    style = {label: (handles[label].get_linestyle(), handles[label].get_marker()) for label in ("shape", "texture")}
    assert style["shape"] != style["texture"]
    colour = {i: to_rgba(handles[f"lambda {v:g}"].get_color()) for i, v in enumerate(values)}
    assert len(set(colour.values())) == len(values)

    def table_curve(i: int, label: str) -> pd.DataFrame:
        table = swept[i].table
        return table[table["label"] == label].sort_values("layer")

    assert len(left.containers) == 2
    for container in left.containers:
        line = container.lines[0]
        [label] = [lab for lab, st in style.items() if st == (line.get_linestyle(), line.get_marker())]
        assert list(line.get_xdata()) == values
        finals = [float(table_curve(i, label)["value"].iloc[-1]) for i in range(len(values))]
        assert list(line.get_ydata()) == pytest.approx(finals)  # the deepest layer's, not the first's
    assert len(right.get_lines()) == 2 * len(values)
    seen = set()
    for line in right.get_lines():
        [i] = [i for i, c in colour.items() if c == to_rgba(line.get_color())]
        [label] = [lab for lab, st in style.items() if st == (line.get_linestyle(), line.get_marker())]
        curve = table_curve(i, label)
        assert list(line.get_xdata()) == list(curve["layer"].astype(float))  # in depth order
        assert list(line.get_ydata()) == pytest.approx(list(curve["value"]))
        seen.add((i, label))
    assert len(seen) == 2 * len(values)


def test_a_sweep_without_labels_names_its_curves_accuracy_and_titles_knn():
    from vitprobe.plots.sweep import draw_sweep

    knn = make_results()["knn"]
    unlabelled = knn.table.assign(label=None)
    fig = draw_sweep([0.0, 1.0], [Result("knn", unlabelled, knn.protocol)] * 2, "w")
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["accuracy", "w 0", "w 1"]
    assert fig._suptitle.get_text().startswith("k-NN against the CL weight w")
    assert fig.axes[0].get_xlabel().startswith("w ")


def test_reconstructions_show_each_images_corrupted_input_output_and_original_in_order():
    from vitprobe.plots.reconstructions import draw_reconstructions

    rng = np.random.default_rng(0)
    count = 4
    examples = {key: rng.integers(0, 255, (count, 8, 8, 3), dtype=np.uint8)
                for key in ("corrupted", "reconstruction", "clean")}
    fig = draw_reconstructions(examples, "gmml tiny")
    assert len(fig.axes) == 3 * count
    axes = np.array(fig.axes).reshape(3, count)  # row by row
    for row, key in enumerate(("corrupted", "reconstruction", "clean")):
        for col in range(count):
            [image] = axes[row, col].get_images()
            np.testing.assert_array_equal(image.get_array(), examples[key][col])
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["corrupted input", "reconstruction", "original"]
    assert fig._suptitle.get_text().startswith("gmml tiny: reconstructions")


def test_fourier_axis_is_in_units_of_pi_up_to_the_last_frequency(results):
    fig = draw("fourier", [("a", results["fourier"])])
    curves = fig.axes[1]
    assert curves.get_xlim()[1] == pytest.approx(results["fourier"].table["frequency"].max())
    fig.canvas.draw()  # the ticks carry the unit, once: "0.2π", under a label that does not repeat it
    assert any(t.get_text().endswith("π") for t in curves.get_xticklabels()) and "π" not in curves.get_xlabel()


def test_unknown_name_is_drawn_by_metric_or_generic(results):
    renamed = Result("probe_v2", results["linear_probe"].table, results["linear_probe"].protocol)
    assert "Linear probe" in draw("probe_v2", [("a", renamed)])._suptitle.get_text()
    novel = Result("novel", pd.DataFrame({"metric": ["m", "m"], "layer": [1, 2], "value": [0.1, 0.2]}), {})
    assert isinstance(draw("novel", [("a", novel)]), Figure)
    per_head = Result("per_head", pd.DataFrame({"metric": ["m"] * 4 + ["one"] * 2, "layer": [1, 1, 2, 2, 1, 2],
                                                "head": [0, 1, 0, 1, 0, 0], "value": [0.1, 0.3, 0.2, 0.4, 1, 2]}), {})
    fig = draw("per_head", [("a", per_head)])
    assert fig.axes[0].get_ylabel() == "m\n(mean over head)" and fig.axes[1].get_ylabel() == "one"
    assert list(fig.axes[0].lines[0].get_ydata()) == pytest.approx([0.2, 0.3])


def test_a_metric_without_layers_is_drawn_per_run_not_at_a_depth():
    """A plugin's whole-model metric (no layer column) is a point per run over the run labels,
    not a point at depth 0 under "depth (0 = embedding)"."""
    whole = [Result("whole", pd.DataFrame({"metric": ["acc"], "value": [v], "std": [s]}), {"dataset": "d"})
             for v, s in ((0.5, 0.1), (0.7, 0.2))]
    fig = draw("whole", [("a", whole[0]), ("b", whole[1])])
    ax = fig.axes[0]
    assert "depth" not in ax.get_xlabel() and [t.get_text() for t in ax.get_xticklabels()] == ["a", "b"]
    points = [line.get_ydata()[0] for line in ax.lines if len(line.get_ydata()) == 1 and line.get_marker() == "o"]
    assert points == pytest.approx([0.5, 0.7])
    bars = [seg for coll in ax.collections for seg in coll.get_segments()]
    assert sorted(abs(seg[1][1] - seg[0][1]) for seg in bars) == pytest.approx([0.2, 0.4])  # +- std
    layered = Result("whole", pd.DataFrame({"metric": ["acc"] * 2, "layer": [1, 2], "value": [0.1, 0.2]}), {"dataset": "d"})
    mixed = draw("whole", [("a", whole[0]), ("c", layered)])  # measured per layer in one run: a depth axis
    assert "depth" in mixed.axes[0].get_xlabel() and len(mixed.axes[0].lines) == 1


def test_run_save_load_and_report(tmp_path, results):
    run = Run(results, checkpoint={"path": "/x/dino.pth", "format": "dino", "sha256": "cd" * 32}, label="dino")
    run.save(tmp_path / "run")
    loaded = Run.load(tmp_path / "run")
    assert loaded.label == "dino" and loaded.checkpoint == run.checkpoint and list(loaded) == list(run)
    for name in run:
        pd.testing.assert_frame_equal(loaded[name].table, run[name].table)
        for ext in ("csv", "json", "png", "svg"):
            assert (tmp_path / "run" / f"{name}.{ext}").is_file()
    html = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    for name in run:
        assert f'id="figure-{name}"' in html and f"{name}.csv" in html
    assert html.count("data:image/svg+xml;base64,") == len(run)
    assert "cd" * 32 in html and "synthetic:8" in html
    training = {"objective": "dino", "epoch": 3, "config": {"epochs": 3, "data": "synthetic:64", "lr": None},
                "in_force": {"lr": 0.001}}
    Run(results, checkpoint={"path": "/x/final.safetensors", "report": {"training": training}}, label="mine").save(
        tmp_path / "trained")
    assert ('<dt>trained</dt><dd>dino, epoch 3 of 3, data &quot;synthetic:64&quot;, lr 0.001</dd>'
            in (tmp_path / "trained" / "report.html").read_text(encoding="utf-8"))  # how the encoder was trained
    assert loaded["attention_nmi"].table["head"].isna().any() and "&lt;NA&gt;" not in html  # per-layer rows: blank



def _report_runs(results):
    """Two runs whose labels, checkpoints, warnings and settings hold HTML's special characters."""
    knn = results["knn"]
    units = Result("knn", knn.table, {**knn.protocol, "pooling": "a<b", "value_units": "% of <held out>"})
    training = {"objective": "dino", "warnings": ["epoch 2: collapse <std 0>"]}
    a = Run([units, results["attention_nmi"]], label="mae",
            checkpoint={"path": "/x/<a>.pth", "format": "dino", "sha256": "ef" * 32, "arch": {"depth": 3, "heads": 2},
                        "report": {"training": training}},
            meta={"analysis_warnings": ["knn: few <images>"]})
    b = Run([Result("knn", knn.table, {**knn.protocol, "pooling": "a<b", "k": 5})], label="mae",
            checkpoint={"arch": "vit_small"}, meta={"analysis_warnings": ["knn: b & c warned"]})
    return a, b


def _embedded_svgs(page: str) -> dict[str, str]:
    import base64
    import re

    found = re.findall(r'<figure id="figure-([^"]+)"><img alt="\1 figure" src="data:image/svg\+xml;base64,([^"]+)">'
                       r'<figcaption>Figure <a href="\1\.svg">\1</a>: ', page)
    return {name: base64.b64decode(data).decode("utf-8") for name, data in found}


def test_a_run_report_escapes_what_it_shows_and_embeds_each_figure(results):
    import html
    import re

    from vitprobe.plots.report import run_report

    run, _ = _report_runs(results)
    run.label = "mine <b>&</b>"
    svgs = {name: f'<svg id="{name}"><text>é</text></svg>' for name in run}
    page = run_report(run, svgs)
    assert "<b>&</b>" not in page and "<a>" not in page and "<images>" not in page
    assert "<title>vitprobe report: mine &lt;b&gt;&amp;&lt;/b&gt;</title>" in page
    assert "<h1>vitprobe report: mine &lt;b&gt;&amp;&lt;/b&gt;</h1>" in page
    assert "<h3>mine &lt;b&gt;&amp;&lt;/b&gt;</h3>" in page
    for field in ("<dt>path</dt><dd>/x/&lt;a&gt;.pth</dd>", "<dt>format</dt><dd>dino</dd>", f"<dt>sha256</dt><dd>{'ef' * 32}</dd>",
                  "<dt>arch</dt><dd>depth=3, heads=2</dd>", "<dt>training warned</dt><dd>epoch 2: collapse &lt;std 0&gt;</dd>",
                  "<dt>analysis warned</dt><dd>knn: few &lt;images&gt;</dd>"):
        assert field in page, field
    assert _embedded_svgs(page) == svgs  # the figure itself, decoded back
    assert "pooling a&lt;b" in page.split('id="figure-knn"')[1].split("</figcaption>")[0]  # its caption
    table = run["knn"].table
    summary = f"<summary>table knn.csv ({len(table)} rows; values: % of &lt;held out&gt;)</summary>"
    assert summary in page
    section = page.split(summary)[1].split("</details>")[0]
    assert section.count("</th>") == len(table.columns)  # a header per column, no index
    assert all(f"<td>{value:.4g}</td>" in section for value in table["value"])
    protocol = page.split('<section id="knn">')[1].split("<summary>protocol</summary><pre>")[1].split("</pre>")[0]
    keys = re.findall(r'^ "([^"]+)":', html.unescape(protocol), flags=re.M)
    assert "&quot;pooling&quot;: &quot;a&lt;b&quot;" in protocol and keys == sorted(keys) and "value_units" in keys


def test_a_comparison_report_names_each_runs_tables_and_links_by_its_compared_label(results):
    from vitprobe.plots.report import compare_report

    a, b = _report_runs(results)
    labels = ["mine <1>", "b & c"]  # both runs are labelled mae: the comparison names them apart
    svgs = {"knn": "<svg>knn</svg>", "attention_nmi": "<svg>nmi</svg>"}
    page = compare_report([a, b], labels, ["knn", "attention_nmi"], svgs, links={"b & c": "b&c/report.html"})
    assert "<title>vitprobe comparison: mine &lt;1&gt;, b &amp; c</title>" in page
    assert page.count("<h3>mine &lt;1&gt;</h3>") == 1 and page.count("<h3>b &amp; c</h3>") == 1
    assert "<dt>arch</dt><dd>vit_small</dd>" in page and "<dt>analysis warned</dt><dd>knn: b &amp; c warned</dd>" in page
    assert '<p><a href="b&amp;c/report.html">report of b &amp; c</a></p>' in page
    assert "report of mine" not in page  # no page of its own was given
    alone = compare_report([a], ["mine"], ["knn"], svgs)  # what analyze of one checkpoint writes at the top
    assert "<title>vitprobe report: mine</title>" in alone and "comparison" not in alone
    assert _embedded_svgs(page) == svgs
    knn, nmi = page.split('<section id="knn">')[1].split('<section id="attention_nmi">')
    assert "k 20 (mine &lt;1&gt;) | 5 (b &amp; c)" in knn.split("</figcaption>")[0]
    assert knn.count("<h4>mine &lt;1&gt;</h4>") == 1 and knn.count("<h4>b &amp; c</h4>") == 1
    assert nmi.count("<h4>") == 1 and "<h4>mine &lt;1&gt;</h4>" in nmi  # only the run that has it


def test_a_results_figure_names_its_run_and_follows_a_renamed_run():
    fresh = make_results()
    run = Run(fresh, label="dino")

    assert legend_texts(run["knn"].plot()) == ["dino", "shape"]
    run.label = "mae"
    assert legend_texts(run["knn"].plot()) == ["mae", "shape"]
    assert legend_texts(run["knn"].plot(label="given")) == ["given", "shape"]
    assert legend_texts(Result("knn", fresh["knn"].table, fresh["knn"].protocol).plot()) == ["knn", "shape"]
    other = Run(fresh, label="other")  # the same results in a second run: each run keeps its name
    assert legend_texts(run["knn"].plot()) == ["mae", "shape"]
    assert legend_texts(other["knn"].plot()) == ["other", "shape"]


def test_drawing_runs_side_by_side_warns_where_they_differ(results):
    other = make_results(seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # same data and settings: silent
        draw("knn", [("a", results["knn"]), ("b", other["knn"])])
    knn = other["knn"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same data read from another folder (or before roots were kept)
        elsewhere = {**knn.protocol, "dataset": {**knn.protocol["dataset"], "root": "/mnt/elsewhere"}}
        draw("knn", [("a", results["knn"]), ("b", Result("knn", knn.table, elsewhere))])
    for protocol, message in [({"dataset": {"spec": "digits"}}, r"different data \(digits \(b\) \| synthetic:8 \(a\)\)"),
                              ({"k": 5}, r"knn was run with different settings \(k 20 \(a\) \| 5 \(b\)\)")]:
        changed = Result("knn", knn.table, {**knn.protocol, **protocol})
        with pytest.warns(UserWarning, match=message):
            figure = draw("knn", [("a", results["knn"]), ("b", changed)])
    assert "k 20 (a) | 5 (b)" in figure._suptitle.get_text()  # the caption names whose k is whose


def test_differing_values_name_their_runs():
    from vitprobe.comparability import join_by_run

    assert join_by_run(["20", "20", "5"], ["moco", "mae", "random"]) == "20 (moco, mae) | 5 (random)"
    assert join_by_run(["20", "20"], ["moco", "mae"]) == "20"  # one value: no names needed
    assert join_by_run(["20", "5", "20"]) == "20 | 5"


def test_how_a_run_was_executed_is_no_difference_in_its_settings():
    """Batch size, device and process count change a table only by rounding; the checkpoint and
    dataset are compared on their own."""
    from vitprobe.comparability import setting_differences

    executed = [{"batch_size": 8, "device": "cpu", "world_size": 1, "checkpoint": {"path": "a"}, "k": 20},
                {"batch_size": 32, "device": "cuda", "world_size": 2, "checkpoint": {"path": "b"}, "k": 20}]
    assert setting_differences(executed, ["a", "b"]) == []
    assert setting_differences([executed[0], {**executed[1], "k": 5}], ["a", "b"]) == ["k 20 (a) | 5 (b)"]


def test_summary_reads_deepest_layer(results):
    summary = Run(results, label="r").summary()
    assert set(summary["dataset"]) == {"synthetic:8 (n=8)"}  # each row says what data it was measured on
    voc = {"spec": "voc:/data/VOC2012", "split": "val", "n": 10, "skipped": 2}
    probe = results["linear_probe"]
    on_voc = Run([Result(probe.name, probe.table, {**probe.protocol, "dataset": voc})]).summary()
    assert set(on_voc["dataset"]) == {"voc:/data/VOC2012 split val (n=10, 2 skipped)"}
    row = summary[summary["metric"] == "token_cosine"].iloc[0]
    table = results["token_similarity"].table
    deepest = table[(table["metric"] == "token_cosine") & (table["layer"] == DEPTH)].iloc[0]
    assert row["layer"] == DEPTH and row["value"] == pytest.approx(deepest["value"])
    assert row["std"] == pytest.approx(deepest["std"]) and row["std"] > 0
    assert row["se"] == pytest.approx(deepest["std"] / deepest["n"] ** 0.5)
    from vitprobe.metrics.accuracy import accuracy_standard_error

    probe = summary[summary["metric"] == "linear_probe_top1"].iloc[0]  # no std: the binomial error of its n
    assert probe["se"] == pytest.approx(accuracy_standard_error(probe["value"], int(probe["n"]), scale=100.0))
    assert row["n"] == table[table["metric"] == "token_cosine"]["n"].max()
    assert set(summary[summary["metric"] == "linear_probe_top1"]["label"]) == {"shape", "texture"}


def test_a_summary_note_names_only_the_settings_of_its_metric(results):
    """A token spectrum over a sample of the images: only the token-level spectrum's note says
    so; the token cosine and the image-level spectrum saw every image."""
    token = results["token_similarity"]
    sampled = {**token.protocol, "analysis": "token_similarity", "spectrum_fraction": 0.5, "spectrum_images": 67}
    notes = Run([Result(token.name, token.table, sampled)]).summary().set_index("metric")["protocol"]
    assert "spectrum fraction 0.5 · spectrum images 67" in notes["log_singular_value_token"]
    for metric in ("token_cosine", "log_singular_value_image"):
        assert "spectrum" not in notes[metric], notes[metric]


def test_summary_names_units_frequency_and_rank(results):
    units = "token_cosine: cosine; log_singular_value_*: natural log of covariance singular values"
    token = results["token_similarity"]
    fourier = results["fourier"]
    run = Run([Result(token.name, token.table, {**token.protocol, "value_units": units}), fourier])
    summary = run.summary().set_index("metric")
    assert summary.loc["token_cosine", "units"] == "cosine"
    assert summary.loc["log_singular_value_image", "units"] == "natural log of covariance singular values"
    assert summary.loc["log_singular_value_image", "protocol"].startswith("rank 1 (the largest)")
    highest = fourier.table["frequency"].max()
    assert summary.loc["delta_log_amplitude", "protocol"].startswith(f"frequency {highest:.3g} pi (the highest)")
    largest = token.table.query(f"metric == 'log_singular_value_image' and layer == {DEPTH} and rank == 1")
    assert len(largest) == 1 and summary.loc["log_singular_value_image", "value"] == largest["value"].iloc[0]
    at_highest = fourier.table.query(f"layer == {DEPTH}")
    at_highest = at_highest[at_highest["frequency"] == highest]
    assert summary.loc["delta_log_amplitude", "value"] == pytest.approx(at_highest["value"].mean())
    per_head = Run([results["attention_distance"]]).summary().set_index("metric").loc["attention_distance_px"]
    assert per_head["protocol"].startswith(f"mean over {HEADS} heads")
    deepest = results["attention_distance"].table.query(f"layer == {DEPTH}")["value"]
    assert per_head["value"] == pytest.approx(deepest.mean())
    assert np.isnan(per_head["std"])  # the std over images of a mean over heads is not kept
    rows = results["attention_distance"].table.query(f"layer == {DEPTH}")
    assert per_head["se"] == pytest.approx((rows["std"] / np.sqrt(rows["n"])).mean())  # as claims read it
    holed = results["attention_distance"].table.copy()
    holed.loc[holed.index[-1], "value"] = np.nan  # a head without a value: left out of the value and the se
    kept = holed.query(f"layer == {DEPTH}").dropna(subset=["value"])
    row = Run([Result("attention_distance", holed, results["attention_distance"].protocol)]).summary().iloc[0]
    assert row["value"] == pytest.approx(kept["value"].mean())
    assert row["se"] == pytest.approx((kept["std"] / np.sqrt(kept["n"])).mean())


def test_captions_name_the_image_size_and_every_parameter_moved_from_its_default(results):
    """Two probes that differ only in C (or image size) must not read alike in the summary."""
    from vitprobe.plots.style import protocol_caption

    probe = results["linear_probe"]
    base = {**probe.protocol, "analysis": "linear_probe", "C": 1.0, "split_seed": 0, "max_iter": 1000,
            "image_size": 32}
    captions = {}
    for label, extra in {"default": {}, "C": {"C": 0.01}, "seed": {"split_seed": 3}, "size": {"image_size": 64}}.items():
        run = Run([Result("linear_probe", probe.table, {**base, **extra})], label=label)
        captions[label] = set(run.summary()["protocol"])
    assert len({frozenset(c) for c in captions.values()}) == 4
    assert all("image size 32" in c and " C " not in f" {c}" for c in captions["default"])
    assert all("C 0.01" in c for c in captions["C"]) and all("split seed 3" in c for c in captions["seed"])
    assert protocol_caption([base, {**base, "C": 0.01}]).count("C 1 | 0.01") == 1


def test_captions_word_switches_as_text_not_python():
    """A boolean setting reads "final norm" / "no final norm", and "yes"/"no" per run where runs differ."""
    from vitprobe.plots.style import protocol_caption

    off, on = {"pooling": "cls", "final_norm": False}, {"pooling": "cls", "final_norm": True}
    assert protocol_caption([off]) == "pooling cls · no final norm"
    assert protocol_caption([on, on]) == "pooling cls · final norm"
    assert protocol_caption([on, off], labels=["a", "b"]) == "pooling cls · final norm yes (a) | no (b)"
    assert "False" not in protocol_caption([off]) and "True" not in protocol_caption([on, off])



def test_caption_values_are_written_short_and_a_dataset_names_its_split_once():
    from vitprobe.plots.style import value_text

    assert value_text({"spec": "voc:/data/VOC2012", "split": "val", "n": 10}) == "voc:/data/VOC2012 split val (n=10)"
    assert value_text({"spec": "voc:/data/VOC2012:val", "split": "val", "n": 10}) == "voc:/data/VOC2012:val (n=10)"
    assert value_text({"name": "digits", "size": 7}) == "digits (n=7)" and value_text({"spec": "d"}) == "d"
    assert value_text([1, 2, 3, 4]) == "1,2,3,4" and value_text([1, 2, 3, 4, 5]) is None  # a long list is left out
    assert value_text(0.123456) == "0.1235" and value_text(12) == "12" and value_text(None) is None


def test_captions_leave_out_block_lists_and_excluded_keys_and_name_a_warning_where_any_run_has_it():
    from vitprobe.plots.style import protocol_caption

    knn = {"analysis": "knn", "pooling": "cls", "k": 5, "layers": [1, 2, 3]}
    assert protocol_caption([knn]) == "pooling cls · k 5"  # the blocks drawn are on the axis
    assert protocol_caption([knn], exclude=["k"]) == "pooling cls"
    assert protocol_caption([{"unconverged_fits": 0}]) == ""  # 0: nothing to warn of
    assert protocol_caption([{"dataset": {"root": "/data"}, "k": 5}]) == "k 5"  # a value it cannot show is left out
    assert protocol_caption([{"unconverged_fits": 0}, {"unconverged_fits": 3}], labels=["a", "b"]) == \
        "unconverged fits 0 (a) | 3 (b)"
    subsampled = {"analysis": "token_similarity", "spectrum_fraction": 0.5, "spectrum_images": 67}
    every = {"analysis": "token_similarity", "spectrum_fraction": 1.0}
    assert protocol_caption([every, subsampled], labels=["moco", "mae"]) == \
        "spectrum fraction 1 (moco) | 0.5 (mae) · spectrum images 67 (mae)"  # not also moco's
    assert protocol_caption([every, subsampled]) == "spectrum fraction 1 | 0.5 · spectrum images 67"


def test_runs_get_colours_of_their_own_and_figures_grow_by_their_panels():
    from vitprobe.plots.style import new_figure, run_colors

    assert len(set(run_colors(5))) == 5 and run_colors(0) == []
    assert new_figure(3).get_figwidth() == pytest.approx(3 * new_figure(1).get_figwidth())
    assert tuple(new_figure(width=5.0, height=2.0).get_size_inches()) == (5.0, 2.0)



def test_a_legend_below_takes_as_many_columns_as_fit_and_the_figure_grows_by_its_rows():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.lines import Line2D

    from vitprobe.plots.style import legend_below, new_figure

    for labels in (["a", "b"], ["a much longer label of a run"] * 3, [f"run {i}" for i in range(12)]):
        fig = new_figure()
        before = fig.get_figheight()
        legend_below(fig, [Line2D([], []) for _ in labels], labels)
        fig.draw(FigureCanvasAgg(fig).get_renderer())
        rows = len({round(t.get_window_extent().y0) for t in fig.legends[0].get_texts()})
        assert fig.get_figheight() == pytest.approx(before + 0.05 + 0.15 * rows), labels
        if len(labels) == 2:
            assert rows == 1  # two short labels side by side
        else:
            assert 1 < rows < len(labels) or len(set(labels)) == 1


def test_the_title_has_a_line_of_its_own_above_the_protocol(results):
    fig = draw("knn", [("a", results["knn"])])
    title, *caption = fig._suptitle.get_text().split("\n")
    assert title == "k-NN per layer"  # the protocol parts start on the next line
    assert caption and "synthetic:8" in caption[0]


def test_saved_figures_are_the_same_bytes_each_time_at_the_figure_dpi(results):
    import struct

    from vitprobe.plots.style import DPI, figure_bytes

    fig = draw("knn", [("a", results["knn"])])
    svg = figure_bytes(fig, "svg")
    assert svg == figure_bytes(fig, "svg") and b"<dc:date>" not in svg  # no time, no random ids
    png = figure_bytes(fig, "png")
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (round(fig.get_figwidth() * DPI), round(fig.get_figheight() * DPI))


def test_a_single_layer_of_per_head_dots_gets_its_own_tick_and_ticks_show_whole_values(results):
    per_head = results["attention_distance"]
    one = Result("attention_distance", per_head.table.query("layer == 2").assign(value=lambda t: 16.5401 + 1e-4 * t["head"]),
                 per_head.protocol)
    fig = draw("attention_distance", [("a", one)])
    ax = fig.axes[0]
    assert list(ax.get_xticks()) == [2.0] and ax.get_xlim() == (1.5, 2.5)
    fig.canvas.draw()
    assert ax.yaxis.get_major_formatter().get_offset() == ""
    assert ax.yaxis.get_major_formatter().get_useOffset() is False  # never a +1.654e1 offset


def test_a_figure_whose_panel_has_a_legend_gets_no_second_one_below():
    from vitprobe.plots.style import finish, new_figure

    fig = new_figure()
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], label="mine")
    ax.legend()
    finish(fig, "title", [])
    assert not fig.legends and fig._suptitle.get_text() == "title"


def test_compare_warns_when_the_runs_saw_different_data(tmp_path, results):
    """Once for the whole comparison (not once per analysis); what a run found (probe fits that
    did not converge, images scored) is no setting."""
    other = {name: Result(r.name, r.table, {**r.protocol, "dataset": {"spec": "digits", "n": 1797},
                                            **({"unconverged_fits": 3} if name == "linear_probe" else {})})
             for name, r in make_results(seed=2).items()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compare([Run(results, label="a"), Run(other, label="b")], tmp_path / "cmp")
    said = "the runs were analysed on different data (digits (b) | synthetic:8 (a)); their numbers"
    assert [str(w.message)[:len(said)] for w in caught] == [said]
    page = (tmp_path / "cmp" / "report.html").read_text(encoding="utf-8")  # and at the head of its report
    head = page.split("<h2>checkpoints</h2>")[0]
    assert "<h2>comparison warned</h2><ul><li>" + said in head and head.count("<li>") == 1
    alike = tmp_path / "alike"
    compare([Run(results, label="a"), Run(results, label="b")], alike)
    assert "comparison warned" not in (alike / "report.html").read_text(encoding="utf-8")


def test_draws_of_the_synthetic_set_are_samples_of_one_distribution_not_other_data():
    """synthetic:64 beside synthetic:64:1 or synthetic:128 was said to be 'not comparable, only
    their shapes'; other normalisation or another kind of data still is."""
    from vitprobe.comparability import warn_if_incomparable
    from vitprobe.data import resolve_dataset

    def said(*specs, **options):
        protocols = [{"dataset": resolve_dataset(spec, 32, **options.get(spec, {})).describe()} for spec in specs]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warn_if_incomparable({"knn": [(spec, p) for spec, p in zip(specs, protocols)]})
        return [str(w.message) for w in caught]

    assert said("synthetic:64", "synthetic:64:1", "synthetic:128") == [
        "the runs were analysed on different draws of the synthetic set (synthetic:128 (synthetic:128) | synthetic:64 "
        "(synthetic:64) | synthetic:64:1 (synthetic:64:1)); their numbers differ by sampling error as well as by model"]
    assert said("synthetic:64", "synthetic:64") == []
    for other in said("synthetic:64", "digits"), said("synthetic:64", "synthetic:64:1",
                                                      **{"synthetic:64:1": {"mean": (0.5,) * 3, "std": (0.5,) * 3}}):
        assert len(other) == 1 and other[0].endswith("their numbers are not comparable, only their shapes")


def test_one_folder_named_two_ways_or_seen_at_two_image_sizes_is_the_same_data():
    from vitprobe.comparability import data_difference, setting_differences

    folder = {"spec": "folder:imgs", "kind": "folder", "root": "/home/me/imgs", "size": 20, "image_size": 224}
    elsewhere = {**folder, "spec": "folder:/home/me/imgs/", "image_size": 64}
    protocols = [{"dataset": folder, "image_size": 224}, {"dataset": elsewhere, "image_size": 64}]
    assert data_difference(protocols) is None
    assert setting_differences(protocols) == ["image_size 224 | 64"]
    voc = {**folder, "kind": "voc", "spec": "voc:VOC2012"}
    assert data_difference([{"dataset": voc}, {"dataset": {**voc, "spec": "voc:/data/VOC2012/"}}]) is None
    # one architecture seen at two sizes: the even-attention distance follows from the size, the layers do not
    arch = {"depth": 2, "reg_tokens": 0, "patch_size": 8}
    sized = [{"checkpoint": {"arch": {**arch, "img_size": size}}, "image_size": size, "layers": [1, 2],
              "even_attention_px": size / 3, "analysis": "knn", "held_out": f"{size} of 40 images"}
             for size in (32, 64)]
    assert setting_differences(sized) == ["image_size 32 | 64"]  # held_out: what knn found, not a setting
    fewer = {**folder, "size": 18, "skipped": 2}
    assert data_difference([{"dataset": folder}, {"dataset": fewer}]) == "folder:imgs, with different size, skipped"
    assert data_difference([{"dataset": folder}, {"dataset": {"spec": "digits", "size": 20}}]) == "digits; folder:imgs"
    # with the runs' labels (each run once, though several of its analyses name its data)
    three = [{"dataset": folder}, {"dataset": fewer}, {"dataset": folder}, {"dataset": fewer}]
    assert (data_difference(three, ["moco", "mae", "moco", "random"])
            == "folder:imgs, with different size, skipped (moco | mae, random)")
    assert (data_difference([{"dataset": folder}, {"dataset": {"spec": "digits"}}, {"dataset": folder}], ["a", "b", "a"])
            == "digits (b) | folder:imgs (a)")


def test_settings_that_follow_from_another_architecture_are_not_named_but_the_rest_are():
    """Between models of other depth or prefix tokens, the layer chosen and the prefix tokens
    dropped follow from the model; a setting chosen by hand still differs."""
    from vitprobe.comparability import setting_differences

    shallow = {"checkpoint": {"arch": {"depth": 2, "reg_tokens": 0}}, "layer": 2, "num_prefix_tokens_dropped": 1,
               "k": 20}
    deep = {"checkpoint": {"arch": {"depth": 12, "reg_tokens": 4}}, "layer": 12, "num_prefix_tokens_dropped": 5,
            "k": 20}
    assert setting_differences([shallow, deep], ["s", "d"]) == []
    assert setting_differences([shallow, {**deep, "k": 5}], ["s", "d"]) == ["k 20 (s) | 5 (d)"]
    same_model = {**shallow, "layer": 1, "num_prefix_tokens_dropped": 0}  # one architecture: a real difference
    assert setting_differences([shallow, same_model]) == ["layer 2 | 1", "num_prefix_tokens_dropped 1 | 0"]


def test_the_same_data_recorded_in_another_key_order_or_form_is_told_apart_only_by_its_contents():
    """A dataset's keys in another order are the same data; one given only by its spec beside
    one described in full differs in no one key, so its contents are said to differ."""
    from vitprobe.comparability import data_difference, setting_differences

    described = {"spec": "digits", "n": 1797, "split": "val"}
    reordered = {"split": "val", "n": 1797, "spec": "digits"}
    assert data_difference([{"dataset": described}, {"dataset": reordered}]) is None
    assert setting_differences([{"data_opts": {"a": 1, "b": 2}}, {"data_opts": {"b": 2, "a": 1}}]) == []
    assert data_difference([{"dataset": "digits"}, {"dataset": described}]) == "digits, with different contents"
    assert (data_difference([{"dataset": "digits"}, {"dataset": described}], ["a", "b"])
            == "digits, with different contents (a | b)")


def test_compare_warns_when_an_analysis_ran_with_other_settings(tmp_path, results):
    """Same data, knn with another k and device: the k is named (the device is how, not what,
    was measured), and knn.json keeps each run's protocol."""
    other = dict(make_results(seed=2))
    knn = other["knn"]
    other["knn"] = Result("knn", knn.table, {**knn.protocol, "k": 10, "device": "cuda"})
    with pytest.warns(UserWarning, match=r"knn was run with different settings \(k 20 \(a\) \| 10 \(b\)\)") as caught:
        compare([Run(results, label="a"), Run(other, label="b")], tmp_path / "cmp")
    assert len(caught) == 1
    saved = json.loads((tmp_path / "cmp" / "knn.json").read_text(encoding="utf-8"))
    assert saved["a"]["k"] == 20 and saved["b"]["k"] == 10


def test_layers_that_follow_from_another_depth_are_not_a_different_setting(tmp_path, results):
    def with_arch(run: dict, depth: int, layers: list[int]) -> dict:
        return {name: Result(r.name, r.table, {**r.protocol, "layers": layers,
                                               "checkpoint": {"arch": {"depth": depth}}}) for name, r in run.items()}

    deep, shallow = with_arch(results, 3, [1, 2, 3]), with_arch(make_results(seed=2), 2, [1, 2])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compare([Run(deep, label="a"), Run(shallow, label="b")], tmp_path / "cmp")
    with warnings.catch_warnings():  # ViT-S/8 beside ViT-S/16: the even-attention distance follows from the patch
        warnings.simplefilter("error")
        distance = results["attention_distance"]
        coarse, fine = ({"attention_distance": Result(distance.name, distance.table, {
            **distance.protocol, "even_attention_px": px, "checkpoint": {"arch": {"depth": 3, "patch_size": p}}})}
            for px, p in ((75.1, 16), (37.5, 8)))
        compare([Run(coarse, label="a"), Run(fine, label="b")], tmp_path / "cmp3")
    chosen = with_arch(make_results(seed=2), 3, [1, 2])  # same model, fewer layers chosen: a real difference
    with pytest.warns(UserWarning, match=r"was run with different settings \(layers \[1, 2, 3\] \(a\) \| \[1, 2\] \(b\)\)"):
        compare([Run(deep, label="a"), Run(chosen, label="b")], tmp_path / "cmp2")


@pytest.mark.slow
def test_compare_two_runs(tmp_path, results):
    a = Run(results, label="mae")
    b = Run(make_results(seed=2), label="mae")
    with pytest.warns(UserWarning) as said:  # same data: not warned of; one label twice: told
        compare([a, b], tmp_path / "cmp")
    assert [str(w.message) for w in said] == ["runs share a label, so the comparison shows 'mae' as 'mae-2'; give "
                                              "each run its own label (analyze --label) to tell them apart"]
    html = (tmp_path / "cmp" / "report.html").read_text(encoding="utf-8")
    stacked = pd.read_csv(tmp_path / "cmp" / "fourier.csv")
    assert set(stacked["run"]) == {"mae", "mae-2"}
    assert len(stacked) == 2 * len(results["fourier"].table)
    for name in results:
        assert (tmp_path / "cmp" / f"{name}.png").is_file() and f'id="figure-{name}"' in html
    assert html.count("<summary>protocol</summary>") == 2 * len(results)  # each run's protocol under its table
    # run folders work as well as Run objects; a lone run is a one-line error
    a.save(tmp_path / "a")
    b.save(tmp_path / "b")
    compare([tmp_path / "a", str(tmp_path / "b")], tmp_path / "from_folders")
    from_folders = pd.read_csv(tmp_path / "from_folders" / "fourier.csv")
    assert list(dict.fromkeys(from_folders["run"])) == ["mae (a)", "mae (b)"]  # one label: told apart by folder
    pd.testing.assert_frame_equal(from_folders.drop(columns="run"), stacked.drop(columns="run"))
    assert [r.label for r in (a, b)] == ["mae", "mae"]  # the caller's Run objects keep their labels
    with pytest.raises(ConfigError, match="takes a list of runs"):
        compare(a, tmp_path / "lone")


def test_compare_reads_a_multi_run_folder_in_the_order_of_its_checkpoints(tmp_path, results):
    from vitprobe.results import load_runs

    for label in ("zeta", "alpha", "mid"):
        Run(results, label=label).save(tmp_path / "both" / label)
    (tmp_path / "both" / "runs.json").write_text(json.dumps([{"label": "zeta"}, {"label": "alpha"}]))
    assert [run.label for run in load_runs(tmp_path / "both")] == ["zeta", "alpha", "mid"]
    # Python's compare reads such a folder as all of its runs, as the command does
    compare([tmp_path / "both"], tmp_path / "cmp")
    assert list(dict.fromkeys(pd.read_csv(tmp_path / "cmp" / "fourier.csv")["run"])) == ["zeta", "alpha", "mid"]


def test_compare_reads_recipe_folders_and_tells_their_runs_apart(tmp_path, results):
    """Two `vitprobe reproduce --out` folders of one recipe: each recipe folder counts as the
    runs in its runs/, and runs of one label are named by the folder that differs."""
    for out in ("r1", "r2"):
        for key, label in (("simmim", "SimMIM tiny"), ("random", "random init")):
            Run(results, label=label).save(tmp_path / out / "study" / "runs" / key)
    compare([tmp_path / "r1" / "study", tmp_path / "r2" / "study"], tmp_path / "cmp")
    labels = [entry["label"] for entry in json.loads((tmp_path / "cmp" / "runs.json").read_text(encoding="utf-8"))]
    assert labels == ["random init (r1)", "SimMIM tiny (r1)", "random init (r2)", "SimMIM tiny (r2)"]


def test_a_mistyped_metric_or_analysis_names_what_is_there(results):
    fourier = results["fourier"]
    assert len(fourier.metric("delta_log_amplitude")) > 0
    with pytest.raises(KeyError, match="fourier has no metric 'typo'; its metrics: delta_log_amplitude"):
        fourier.metric("typo")
    run = Run(results, label="r")
    with pytest.raises(KeyError, match="run 'r' has no analysis 'typo'; it has: .*fourier"):
        run["typo"]
    assert "typo" not in run and "fourier" in run


@pytest.mark.parametrize("name", ["fourier", "token_similarity"])
def test_depth_colour_bars_tick_whole_blocks_only(results, name):
    fig = draw(name, [("a", results[name])])
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert bars
    fig.canvas.draw()
    for bar in bars:
        ticks = [t for t in bar.get_yticks() if bar.get_ylim()[0] <= t <= bar.get_ylim()[1]]
        assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks)


def test_drawing_leaves_the_users_matplotlib_backend_alone(results):
    """In a notebook the inline backend must stay: vitprobe draws without pyplot or a backend."""
    import importlib

    import matplotlib

    import vitprobe.plots.style

    before = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        importlib.reload(vitprobe.plots.style)  # what importing vitprobe.plots does
        fig = draw("knn", [("a", results["knn"])])
        assert vitprobe.plots.figure_bytes(fig, "png").startswith(b"\x89PNG")
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(before)


def test_draw_refuses_what_it_cannot_draw_in_one_line(results):
    nmi, distance = results["attention_nmi"], results["attention_distance"]
    for name, items, message in [
            ("attention_nmi", [], r"draw: no results given; e.g. draw\('attention_nmi', \[\('mae', run\['attention_nmi'\]\)\]\)"),
            ("attention_nmi", [nmi], r"draw takes \(run label, Result\) pairs, got Result"),
            ("attention_nmi", nmi, r"draw takes a list of \(run label, Result\) pairs, got Result"),
            ("attention_nmi", [("a", distance)],
             r"draw\('attention_nmi', ...\): run 'a' holds the attention_distance result; draw it as draw\('attention_distance'"),
            ("attn", [("a", nmi)], r"run 'a' holds the attention_nmi result"),
            ("attention_nmi", [("a", nmi), ("b", nmi), ("a", nmi)],
             r"draw\('attention_nmi', ...\): label 'a' is given twice, so the legend could not tell those runs "
             r"apart; give each run its own label"),
            ("attention_nmi", "a", r"draw takes a list of \(run label, Result\) pairs, got str"),
            ("attention_nmi", [(1, nmi)], r"draw takes \(run label, Result\) pairs, got tuple")]:
        with pytest.raises(ConfigError, match=message):
            draw(name, items)


def test_results_and_runs_show_their_protocol_and_values_in_jupyter(results):
    """`run['knn']` in a notebook showed only `Result('knn', 4 rows, ...)`."""
    result = results["token_similarity"]
    page = result._repr_html_()
    assert page.startswith("<p><b>token_similarity</b>") and "<table" in page
    assert len(result.table) > 12 and f"{len(result.table) - 12} more rows" in page and page.count("<tr>") == 12  # body rows
    assert "image size" in page  # the protocol, as captions give it
    run = Run(results, label="mine <1>")
    run_page = run._repr_html_()
    assert "<b>mine &lt;1&gt;</b>" in run_page and run_page.count("<tr>") == len(run.summary())
    for shown, table in ((page, result.table.head(12)), (run_page, run.summary())):  # no number: "-", as printed
        assert table.isna().any().any() and "<td>-</td>" in shown
        assert "NaN" not in shown and "&lt;NA&gt;" not in shown
    assert "skipped" not in run_page
    skipping = Run(results, label="r", meta={"skipped_analyses": {"knn": "needs labels & the data has none"}})
    assert "<small>skipped knn: it needs labels &amp; the data has none</small>" in skipping._repr_html_()


def test_n_is_a_nullable_integer_column() -> None:
    table = Result("x", pd.DataFrame({"metric": ["a", "b"], "value": [1.0, 2.0], "n": [4, None]}), {}).table
    assert str(table["n"].dtype) == "Int64" and table["n"].tolist()[0] == 4


def test_the_attention_distance_line_is_the_mean_over_heads(results) -> None:
    result = results["attention_distance"]
    line = draw("attention_distance", [("a", result)]).axes[0].lines[0]
    expected = result.table.groupby("layer")["value"].mean()
    assert list(line.get_xdata()) == [float(x) for x in expected.index]
    assert np.allclose(line.get_ydata(), expected.to_numpy())


def test_depth_colours_run_from_shallow_dark_to_deep_bright(results) -> None:
    from matplotlib import colormaps

    lines = draw("fourier", [("a", results["fourier"])]).axes[1].lines
    assert np.allclose(lines[0].get_color(), colormaps["viridis"](0.0))
    assert np.allclose(lines[-1].get_color(), colormaps["viridis"](1.0))


def test_head_diversity_marks_its_maximum_log_2(results) -> None:
    import math

    ax = draw("attention_nmi", [("a", results["attention_nmi"])]).axes[1]
    assert any(np.allclose(line.get_ydata(), math.log(2)) for line in ax.get_lines())


def test_twelve_heads_are_ticked_in_numeric_order(results) -> None:
    rows = pd.DataFrame([{"metric": "jaccard", "head": h, "value": 0.5, "std": 0.1, "n": 4} for h in range(12)])
    many = Result("attention_jaccard", rows, results["attention_jaccard"].protocol)
    ax = draw("attention_jaccard", [("a", many)]).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == [f"h{h}" for h in range(12)]


def test_a_comparison_names_runs_of_one_label_apart_in_every_file(tmp_path, results):
    """Two runs labelled alike compare as mae and mae-2: in the stacked table, the protocols,
    runs.json (which `vitprobe compare` prints) and the figures, of which one drawn for a run under
    its own label is copied, and one whose run was renamed is drawn again."""
    from vitprobe.results import write_comparison

    a = Run({"knn": results["knn"], "attention_distance": results["attention_distance"]}, label="mae")
    b = Run({"knn": make_results(seed=2)["knn"], "fourier": results["fourier"]}, label="mae")
    drawn = [tmp_path / "a", tmp_path / "b"]
    for folder, name in zip(drawn, ("attention_distance", "fourier")):
        folder.mkdir()
        for fmt in ("png", "svg"):
            (folder / f"{name}.{fmt}").write_text(f"{folder.name}'s own drawing")
    out = tmp_path / "cmp"
    out.mkdir()
    assert write_comparison([a, b], out, drawn_in=drawn) == ["mae", "mae-2"]
    assert [e["label"] for e in json.loads((out / "runs.json").read_text(encoding="utf-8"))] == ["mae", "mae-2"]
    assert list(dict.fromkeys(pd.read_csv(out / "knn.csv")["run"])) == ["mae", "mae-2"]
    assert list(json.loads((out / "knn.json").read_text(encoding="utf-8"))) == ["mae", "mae-2"]
    assert list(pd.read_csv(out / "fourier.csv")["run"].unique()) == ["mae-2"]
    assert (out / "attention_distance.svg").read_text(encoding="utf-8") == "a's own drawing"  # a is still mae
    assert (out / "fourier.svg").read_text(encoding="utf-8").startswith("<?xml")  # drawn as mae-2, not b's copy


def test_the_out_folder_of_reproduce_names_its_recipe_folders(tmp_path, results):
    """A recipe's folder counts as the runs in its runs/; the folder above it holds one per
    recipe, so loading it names them instead of saying only that no run is there."""
    from vitprobe.results import load_runs

    for recipe in ("small", "extra"):
        Run(results, label="a").save(tmp_path / "rep" / recipe / "runs" / "a")
    assert [run.label for run in load_runs(tmp_path / "rep" / "small")] == ["a"]
    with pytest.raises(ConfigError, match=r"rep: this holds the recipe folders of `vitprobe reproduce` \(extra, "
                                          r"small\); pass one of them, e.g. .*rep/extra$"):
        load_runs(tmp_path / "rep")
    with pytest.raises(ConfigError, match="no run.json here or in its sub-folders"):
        load_runs(tmp_path)  # holds rep, which is no recipe's folder


def test_loading_a_comparison_says_it_keeps_no_runs(tmp_path, results):
    from vitprobe.results import compare, load_runs

    compare([Run(results, label="a"), Run(results, label="b")], tmp_path / "cmp")
    with pytest.raises(ConfigError, match=r"cmp: a comparison \(of a, b\), which keeps the overlaid figures and "
                                          r"tables but not the runs; load the run folders it was made from"):
        load_runs(tmp_path / "cmp")


def test_the_per_head_dots_of_two_runs_sit_either_side_of_their_layer():
    table = pd.DataFrame({"metric": "attention_distance_px", "layer": [1, 1, 2, 2], "head": [0, 1, 0, 1],
                          "value": [1.0, 2.0, 3.0, 4.0]})
    items = [(label, Result("attention_distance", table, {})) for label in ("a", "b")]
    ax = draw("attention_distance", items).axes[0]
    dots = [list(c.get_offsets()[:, 0]) for c in ax.collections]
    assert dots == [pytest.approx([0.85, 0.85, 1.85, 1.85]), pytest.approx([1.15, 1.15, 2.15, 2.15])]


def test_nmi_starts_at_zero_and_head_diversity_is_drawn_where_any_run_has_it():
    nmi = pd.DataFrame({"metric": "nmi", "layer": [1, 2], "head": [0, 0], "value": [0.5, 0.6]})
    diversity = pd.DataFrame({"metric": "head_diversity_jsd", "layer": [1, 2], "value": [0.2, 0.3]})
    nmi_only = Result("attention_nmi", nmi, {})
    both = Result("attention_nmi", pd.concat([nmi, diversity]), {})
    one_head = Result("attention_nmi", pd.concat([nmi, diversity.assign(value=np.nan)]), {})
    fig = draw("attention_nmi", [("a", nmi_only), ("b", both)])
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["query dependence per head (0 = collapsed)", "pairwise JSD of heads (max log 2)"]
    assert fig.axes[0].get_ylim()[0] == 0.0  # not zoomed onto 0.5..0.6
    undefined = "undefined: one head,\nno pair of heads to compare"
    assert [t.get_text() for t in draw("attention_nmi", [("a", one_head)]).axes[1].texts] == [undefined]
    assert not draw("attention_nmi", [("a", one_head), ("b", both)]).axes[1].texts  # b's heads have pairs


def _fourier(scale: float, frequency: float | None = None) -> Result:
    """Layers 0 and 1, rows from the highest frequency down: 0 at 0, -scale * (layer + 1) * f / 0.5."""
    rows = [{"metric": "delta_log_amplitude", "layer": layer, "frequency": f if frequency is None else frequency,
             "value": -scale * (layer + 1) * f / 0.5} for layer in (0, 1) for f in (0.5, 0.25, 0.0)]
    return Result("fourier", pd.DataFrame(rows), {})


def test_fourier_reads_the_highest_frequency_and_draws_each_runs_curves_in_its_own_panel():
    fig = draw("fourier", [("a", _fourier(1.0)), ("b", _fourier(2.0)), ("c", _fourier(1.0, frequency=np.nan))])
    assert list(fig.axes[0].lines[0].get_ydata()) == [-1.0, -2.0]  # at 0.5 pi, not a mean over frequencies
    assert list(fig.axes[0].lines[1].get_ydata()) == [-2.0, -4.0]
    assert [ax.get_title() for ax in fig.axes[1:4]] == ["a", "b", ""]  # c has no frequency: its panel stays empty
    assert not fig.axes[3].lines
    curve = fig.axes[2].lines[0]  # b's layer 0, drawn from low to high frequency
    assert list(curve.get_xdata()) == [0.0, 0.25, 0.5] and list(curve.get_ydata()) == [0.0, -1.0, -2.0]
    ticks = fig.axes[1].xaxis.get_major_formatter()
    assert ticks(0.0, 0) == "0" and ticks(0.5, 1) == "0.5π"


def test_one_layer_still_gets_a_colour_bar_of_whole_blocks():
    one = _fourier(1.0).table.query("layer == 1")
    fig = draw("fourier", [("a", Result("fourier", one, {}))])
    [bar] = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert bar.get_ylim() == (1.0, 2.0)


def test_the_fallback_figure_draws_every_runs_metrics_and_a_table_without_layers_at_depth_0():
    a = Result("novel", pd.DataFrame({"metric": ["m", "m"], "layer": [1, 2], "value": [0.1, 0.2], "n": [10, 20]}), {})
    b = Result("novel", pd.DataFrame({"metric": ["m", "extra"], "layer": [1, 1], "value": [0.3, 0.4]}), {})
    fig = draw("novel", [("a", a), ("b", b)])
    assert [ax.get_ylabel() for ax in fig.axes] == ["m", "extra"]  # n is a count, not an axis averaged over
    flat = Result("flat", pd.DataFrame({"metric": ["s"], "value": [0.7]}), {})
    line = draw("flat", [("a", flat)]).axes[0].lines[0]
    assert list(line.get_xdata()) == [0.0] and list(line.get_ydata()) == [0.7]


def test_accuracy_as_a_fraction_without_labels_names_its_largest_held_out_count():
    fraction = pd.DataFrame({"metric": "knn_top1", "layer": [1, 2], "value": [0.5, np.nan], "n": [10, 20]})
    fig = draw("knn", [("a", Result("knn", fraction, {}))])
    assert fig.axes[0].get_ylabel() == "top-1 accuracy, band ±1 SE\n(n=20 held out)"
    assert legend_texts(fig) == ["a"]  # no label column: no entry for a label
    assert not fig.axes[0].texts  # one finite value is enough: no "no finite value" note
    uncounted = pd.DataFrame({"metric": "knn_top1", "layer": [1, 2], "value": [50.0, 60.0]})
    assert draw("knn", [("a", Result("knn", uncounted, {}))]).axes[0].get_ylabel() == "top-1 accuracy (%), band ±1 SE"


def test_spectra_leave_out_values_at_the_floor_and_name_their_run():
    from vitprobe.metrics.spectrum import SPECTRUM_EPS

    rows = [{"metric": "token_cosine", "layer": 1, "value": 0.5}]
    rows += [{"metric": "log_singular_value_image", "layer": 1, "rank": k, "value": v}
             for k, v in ((1, -1.0), (2, -2.0), (3, float(np.log(SPECTRUM_EPS))))]
    fig = draw("token_similarity", [("a", Result("token_similarity", pd.DataFrame(rows), {}))])
    [spectrum] = [ax for ax in fig.axes if ax.get_title() == "a: image level"]
    assert list(spectrum.lines[0].get_xdata()) == [1, 2] and list(spectrum.lines[0].get_ydata()) == [-1.0, -2.0]

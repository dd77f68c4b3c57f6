"""Recipes are validated before any work, and claims are judged from the tables."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pytest
import yaml

from vitprobe.claims import Verdict, evaluate, select_rows
from vitprobe.cli import main
from vitprobe.errors import ConfigError, VitprobeError
from vitprobe.recipes import RECIPE_DIR, RECIPES, load_recipe


@pytest.mark.parametrize("name", sorted(p.stem for p in RECIPE_DIR.glob("*.yaml")))
def test_every_shipped_recipe_validates(name: str) -> None:
    recipe = load_recipe(RECIPE_DIR / f"{name}.yaml", quick=True)
    if name in RECIPES:
        assert load_recipe(name).path == RECIPE_DIR / f"{name}.yaml"
    assert recipe.name == name and recipe.models and recipe.analyses
    from vitprobe.reproduce import _OWN_FIGURE  # a rerun recognises these files as its own

    assert all(_OWN_FIGURE.fullmatch(f"{stem}.{fmt}") for stem in recipe.extra_figures for fmt in ("png", "svg"))
    for claim in recipe.claims:
        for side in ("greater", "than"):
            if side in claim.check:
                assert claim.check[side] in {m.key for m in recipe.models}


def _write(tmp_path: Path, **changes) -> Path:
    raw = yaml.safe_load((RECIPE_DIR / "cl_vs_mim.yaml").read_text(encoding="utf-8"))
    raw.update(changes)
    for model in (raw["models"].values() if isinstance(raw.get("models"), dict) else []):
        if isinstance(model.get("train"), str):
            model["train"] = str(RECIPE_DIR / model["train"])
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _claim(**check) -> dict:
    return {"figure": "knn", "text": "t", "check": {"metric": "knn_top1", "label": "shape",
                                                    "greater": "mocov3", "than": "simmim", **check}}


@pytest.mark.parametrize("changes, message", [
    ({"analyses": ["attention_distance", "atention_nmi"]}, "unknown analysis 'atention_nmi'"),
    ({"models": {"a": {"checkpoint": "/nonexistent/model.pth"}}}, "does not exist"),
    ({"models": {"a": {"train": {"method": "hybrid", "lam": 1.5}}}}, "lambda"),
    ({"models": {"a": {"train": {"method": "mae", "epoch": 3}}}}, "unknown training option"),
    ({"data": "synthtic:10"}, "synthtic"),
    ({"data": "folder:no_such_imgs"}, r"folder 'no_such_imgs' does not exist.* \(relative paths in a data spec are read "
                                      r"from the folder vitprobe runs in, /"),
    ({"bogus": 1}, "unknown recipe keys"),
    ({"claims": [{"figure": "knn", "text": "t", "check": {"metric": "knn_top1", "label": [],
                                                          "greater": "mocov3", "than": "simmim"}}]},
     "label must be a label name or a list"),
    ({"batch_size": 0}, r"batch_size must be a whole number >= 1, got 0"),
    ({"batch_size": "big"}, r"batch_size must be a whole number >= 1, got 'big'"),
    ({"batch_size": 6.5}, r"batch_size must be a whole number >= 1, got 6.5"),
    ({"name": "my study"}, r"name 'my study' names an output folder"),
    ({"models": ["mocov3", "simmim"]}, r"`models` must be a mapping"),
    ({"models": {}}, r"no models; give at least one"),
    ({"models": {"a": {"train": {"method": "mae"}, "num_heads": "four"}}}, r"model 'a': num_heads must be a whole number"),
    ({"models": {"a": {"label": "x", "train": {"method": "mae"}}, "b": {"label": "x", "train": {"method": "simmim"}}}},
     r"models 'a' and 'b' have the same label 'x'"),
    ({"claims": [_claim(metric="knn_top")]}, r"metric 'knn_top' is none of the analyses' metrics: .*knn_top1"),
    ({"claims": [_claim(label="shapes")]}, r"label 'shapes': the data has shape, texture; name one of them"),
    ({"claims": [_claim(layers="lastt")]}, r"layers must be one of all, last, first_half, last_half"),
    ({"claims": [_claim(than="mocov3")]}, r"compares 'mocov3' with itself"),
    ({"claims": [_claim(than="simim")]}, r"than names 'simim', not a model"),
    ({"claims": [{"figure": "fourier", "text": "t", "check": {"metric": "delta_log_amplitude", "frequency": "high",
                                                              "greater": "simmim", "than": "mocov3"}}]},
     r"frequency must be `highest` or a number"),
    ({"claims": [_claim(frequency="highest")]}, r"claim check frequency: metric knn_top1 \(knn\) has no frequency to select"),
    ({"claims": [{"figure": "attention_nmi", "text": "t", "check": {"metric": "nmi", "label": "shape",
                                                                    "greater": "simmim", "than": "mocov3"}}]},
     r"claim check label: metric nmi \(attention_nmi\) has no label to select; drop label:"),
    ({"claims": [{**_claim(), "text": 5}]}, r"claim text must be the sentence the claim tests, got 5"),
    ({"params": {"knn": {"layers": [2, 4]}}, "claims": [_claim(layers=[1])]},
     r"claim check layers \[1\]: params has knn read only layers \[2, 4\]; add them there"),
    ({"params": {"attention_nmi": {"layers": [0, 4]}}},
     r"params: attention_nmi.layers \[0\] lie outside the blocks attention_nmi reads in every model \(1..4: "),
    ({"models": {"a": {"train": {"method": "simmim", "hparams": {"mask_rati": 0.5}}}}},
     r"model 'a': objective 'simmim': unknown hyper-parameter\(s\) \['mask_rati'\]"),
    ({"models": {"a": {"train": {"method": "simmim", "hparams": {"mask_ratio": 2.0}}}}},
     r"model 'a': objective 'simmim': mask_ratio must be in \(0, 1\)"),
    ({"models": {"a": {"train": {"method": "simmim", "epochs": 2, "hparams": {"warmup_epochs": 5}}}}},
     r"model 'a': warm-up of 5 epochs does not fit in 2 epochs"),
    ({"models": {"a": {"train": {"method": "simmim", "device": "tpu", "out": "/tmp/x"}}}},
     r"model 'a': device, out is set by vitprobe reproduce \(--device, --out\); drop it"),
    ({"claims": [{**_claim(), "figure": "knnn"}]}, r"claim figure 'knnn' is not drawn"),
    ({"claims": "none"}, r"`claims` must be a list"),
    ({"params": {"attention_jaccard": {"keep_mass": 0.5}}}, r"params given for 'attention_jaccard', which the recipe does not run"),
    ({"params": {"knn": {"kk": 5}}}, r"params: analysis 'knn' has no parameter kk"),
    ({"params": {"knn": {"k": "many"}}}, r"params: analysis 'knn': k takes integer, got 'many'"),
])
def test_typos_fail_in_one_line_before_work(tmp_path: Path, changes: dict, message: str) -> None:
    path = _write(tmp_path, **changes)
    if "models" in changes:
        path.write_text(path.read_text(encoding="utf-8").replace("claims:", "claims_removed:"))
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        raw.pop("claims_removed")
        path.write_text(yaml.safe_dump(raw))
    with pytest.raises(VitprobeError, match=message) as err:
        load_recipe(path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("bad", [2.0, True])  # YAML's `true` is no lambda, though Python counts it as 1
def test_bad_sweep_lambda(tmp_path: Path, bad: object) -> None:
    raw = yaml.safe_load((RECIPE_DIR / "hybrid_sweep.yaml").read_text(encoding="utf-8"))
    raw["sweep"]["values"] = [0.0, bad]
    raw["sweep"]["train"] = str(RECIPE_DIR / raw["sweep"]["train"])
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=f"sweep value {bad!r} is not a lambda in"):
        load_recipe(path)


def test_cli_reports_bad_recipe_with_exit_2(tmp_path: Path, capsys) -> None:
    assert main(["reproduce", "no_such_recipe", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vitprobe: error:") and "no_such_recipe" in err and "\n" not in err
    assert not any(tmp_path.iterdir())  # nothing was started


def test_reproduce_under_torchrun_is_refused_before_any_work(tmp_path: Path, capsys, monkeypatch) -> None:
    """Every rank would train, analyse and publish the whole job into one folder."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["reproduce", "dino_attention", "--quick", "--out", str(tmp_path)]) == 2
    assert "vitprobe reproduce runs in one process: drop torchrun" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_data_that_cannot_feed_the_recipe_fails_before_training(tmp_path: Path, capsys) -> None:
    with pytest.raises(ConfigError, match="attention_jaccard.*needs foreground masks, which digits lacks"):
        load_recipe("dino_attention", data="digits")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    assert main(["reproduce", "dino_attention", "--quick", "--out", str(a_file / "sub")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def _tiny_checkpoint(path: Path) -> Path:
    from vitprobe.models.architecture import ArchSpec, build_model
    from vitprobe.models.own_format import save_encoder

    arch = ArchSpec(patch_size=8, embed_dim=32, depth=2, num_heads=2, img_size=32)
    return save_encoder(path, build_model(arch), arch, {"objective": "random_init"})


def test_checkpoint_override_replaces_training(tmp_path: Path) -> None:
    ckpt = _tiny_checkpoint(tmp_path / "dino.safetensors")  # a random encoder given for DINO (role cl)
    with pytest.warns(UserWarning, match=r"model 'dino': its role is cl, but .*dino.safetensors is a random_init "
                                         r"checkpoint \(baseline\); check that the file is meant for this model"):
        recipe = load_recipe("dino_attention", checkpoints={"dino": str(ckpt)})
    dino = next(m for m in recipe.models if m.key == "dino")
    assert dino.checkpoint == ckpt and dino.train is None
    from vitprobe.models.architecture import ArchSpec, build_model
    from vitprobe.models.own_format import save_encoder

    arch = ArchSpec(patch_size=8, embed_dim=32, depth=2, num_heads=2, img_size=32)
    contrastive = save_encoder(tmp_path / "moco.safetensors", build_model(arch), arch, {"objective": "mocov3"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # another contrastive model for the cl role: nothing to say
        load_recipe("dino_attention", checkpoints={"dino": str(contrastive)})
    from vitprobe.models.export import export_checkpoint

    exported = export_checkpoint(ckpt, "dino", tmp_path / "exported_dino.pth")  # DINO's layout, a random encoder
    with pytest.warns(UserWarning, match=r"its role is cl, but .*exported_dino.pth is a random_init checkpoint"):
        load_recipe("dino_attention", checkpoints={"dino": str(exported)})
    with pytest.raises(ConfigError, match="no model 'dnio'"):
        load_recipe("dino_attention", checkpoints={"dnio": str(ckpt)})
    with pytest.warns(UserWarning, match=r"--model gmml=\.\.\.: its reconstructions figure is not drawn: it "
                                         r"needs the GMML decoder of a model the recipe trains"):
        gmml = load_recipe("sit_gmml", checkpoints={"gmml": str(ckpt)})
    assert "reconstructions_gmml" not in gmml.extra_figures and "reconstructions_gmml" in load_recipe("sit_gmml").extra_figures


@pytest.mark.parametrize("write, message", [
    (lambda p: p.write_bytes(b"not a checkpoint"), r"model 'dino': checkpoint .*junk.pth is neither a torch.save file"),
    (lambda p: p.mkdir(), r"model 'dino': checkpoint .*junk.pth is a folder; give the checkpoint file in it"),
])
def test_a_bad_checkpoint_fails_before_any_training(tmp_path: Path, write, message) -> None:
    junk = tmp_path / "junk.pth"
    write(junk)
    with pytest.raises(ConfigError, match=message):
        load_recipe("dino_attention", checkpoints={"dino": str(junk)})


def _table(metric: str, values: dict[int, float], **extra) -> pd.DataFrame:
    """Rows of one metric by layer; by default measured on 400 images with a small spread."""
    return pd.DataFrame([{"metric": metric, "layer": layer, "value": v, "n": 400, "std": 0.01, **extra}
                         for layer, v in values.items()])


def test_select_rows_layers() -> None:
    table = _table("nmi", {1: 0.1, 2: 0.2, 3: 0.3, 4: 0.4})
    assert list(select_rows(table, {"metric": "nmi", "layers": "last_half"})["layer"]) == [3, 4]
    assert list(select_rows(table, {"metric": "nmi", "layers": "last"})["layer"]) == [4]
    assert list(select_rows(table, {"metric": "nmi", "layers": [1, 3]})["layer"]) == [1, 3]
    assert list(select_rows(table, {"metric": "nmi", "layers": "first_half"})["layer"]) == [1, 2]
    odd = _table("nmi", {1: 0.1, 2: 0.2, 3: 0.3})  # the middle layer goes with the deeper half
    assert list(select_rows(odd, {"metric": "nmi", "layers": "last_half"})["layer"]) == [2, 3]
    assert list(select_rows(odd, {"metric": "nmi", "layers": "first_half"})["layer"]) == [1]
    one = _table("nmi", {5: 0.1})
    for half in ("first_half", "last_half"):
        assert list(select_rows(one, {"metric": "nmi", "layers": half})["layer"]) == [5]
    tokens = _table("cos", {0: 1.0, 1: 0.1, 2: 0.2, 3: 0.3, 4: 0.4})  # layer 0: the patch embedding
    assert list(select_rows(tokens, {"metric": "cos", "layers": "last_half"})["layer"]) == [3, 4]
    assert list(select_rows(tokens, {"metric": "cos", "layers": "first_half"})["layer"]) == [0, 1, 2]
    embedding_and_one = _table("cos", {0: 1.0, 1: 0.1})
    assert list(select_rows(embedding_and_one, {"metric": "cos", "layers": "last_half"})["layer"]) == [1]
    assert list(select_rows(embedding_and_one, {"metric": "cos", "layers": "first_half"})["layer"]) == [0]


def test_greater_than_verdicts() -> None:
    tables = {"cl": {"a": _table("nmi", {1: 0.5, 2: 0.1})}, "mim": {"a": _table("nmi", {1: 0.1, 2: 0.4})}}
    check = {"metric": "nmi", "layers": "last", "greater": "mim", "than": "cl"}
    assert evaluate(check, tables, {}).agrees is True
    assert evaluate({**check, "layers": [1]}, tables, {}).agrees is False
    assert evaluate({**check, "metric": "knn_top1"}, tables, {}).agrees is None


def test_verdict_details_name_the_layers_each_model_averaged() -> None:
    """"layers last_half" did not say which blocks; a metric without layers said "layers all"."""
    deep = {"a": _table("nmi", {i: 0.1 * i for i in range(1, 13)}, n=8, std=0.1)}
    shallow = {"a": _table("nmi", {i: 0.1 for i in range(1, 5)}, n=8, std=0.1)}
    check = {"metric": "nmi", "layers": "last_half", "greater": "deep", "than": "shallow"}
    assert "(nmi, layers last_half (7-12 | 3-4); +- 1" in evaluate(check, {"deep": deep, "shallow": shallow}, {}).detail
    assert "layers last_half (3-4);" in evaluate({**check, "greater": "other"}, {"other": shallow, "shallow": shallow},
                                                 {}).detail
    assert "layers 1, 12 (1, 12 | 1);" in evaluate({**check, "layers": [1, 12]}, {"deep": deep, "shallow": shallow}, {}).detail
    headless = {"a": pd.DataFrame([{"metric": "jaccard_best_head", "value": 0.5, "n": 8, "std": 0.1}])}
    best = evaluate({"metric": "jaccard_best_head", "greater": "x", "than": "y"}, {"x": headless, "y": headless}, {})
    assert best.detail.endswith("(jaccard_best_head; +- 1 standard error, decided beyond 2)")


def test_a_metric_without_a_spread_gets_no_accuracy_error_and_the_detail_says_so() -> None:
    """The image-level spectrum has n but no std: it used to borrow a binomial error meant for
    percent accuracies, and the detail claimed "+- 1 standard error" either way."""
    def spectrum(v: float) -> dict:
        return {"token_similarity": _table("log_singular_value_image", {4: v}, rank=1, n=64, std=float("nan"))}

    check = {"metric": "log_singular_value_image", "layers": "last", "greater": "a", "than": "b"}
    verdict = evaluate(check, {"a": spectrum(1.56), "b": spectrum(1.5)}, {})
    assert verdict.agrees is None and "+-" not in verdict.detail  # any gap may be noise: a min_difference decides
    assert ("no standard error (the table gives no spread over images), so undecided: give min_difference"
            in verdict.detail)
    assert "(log_singular_value_image (natural log), layers last (4), rank 1 (the largest);" in verdict.detail
    decided = evaluate({**check, "min_difference": 0.05}, {"a": spectrum(1.56), "b": spectrum(1.5)}, {})
    assert decided.agrees is True and "decided by a difference over 0.05" in decided.detail
    assert evaluate({**check, "min_difference": 0.1}, {"a": spectrum(1.56), "b": spectrum(1.5)}, {}).agrees is None


def test_spectra_and_fourier_curves_are_read_at_one_rank_and_frequency_not_averaged_over_them() -> None:
    """Averaged over every rank, a model with 63 ranks and one with 255 were compared as if alike."""
    def spectrum(values: list[float]) -> dict:
        return {"t": pd.concat([_table("log_singular_value_token", {4: v}, rank=r + 1) for r, v in enumerate(values)])}

    check = {"metric": "log_singular_value_token", "layers": "last", "greater": "a", "than": "b"}
    few, many = spectrum([2.0, 1.0]), spectrum([1.0, 0.9, -5.0, -6.0])  # mean over ranks: 1.5 vs -2.3
    assert evaluate(check, {"a": many, "b": few}, {}).agrees is False  # rank 1: 1.0 < 2.0
    assert "rank 1 (the largest)" in evaluate(check, {"a": many, "b": few}, {}).detail
    assert "rank 2;" in evaluate({**check, "rank": 2}, {"a": many, "b": few}, {}).detail
    assert evaluate({**check, "rank": 2, "greater": "b", "than": "a"}, {"a": many, "b": few}, {}).agrees is True
    missing = evaluate({**check, "rank": 3}, {"a": many, "b": few}, {})
    assert missing.agrees is None and "b: no rank 3; it has 1, 2" in missing.detail

    def fourier(values: dict[float, float]) -> dict:
        return {"f": pd.concat([_table("delta_log_amplitude", {4: v}, frequency=f) for f, v in values.items()])}

    curves = {"cl": fourier({0.0: 0.0, 0.5: -1.0, 0.75: -3.0}), "mim": fourier({0.0: 0.0, 0.5: -2.0, 0.75: -2.0})}
    check = {"metric": "delta_log_amplitude", "layers": "last", "greater": "mim", "than": "cl"}
    assert evaluate(check, curves, {}).agrees is True and "frequency highest" in evaluate(check, curves, {}).detail
    assert evaluate({**check, "frequency": 0.5}, curves, {}).agrees is False
    off_grid = evaluate({**check, "frequency": 0.3}, curves, {"mim": "SimMIM"})
    assert off_grid.agrees is None
    assert "SimMIM: no frequency 0.3; it has 0, 0.5, 0.75 (units of pi); cl: no frequency 0.3" in off_grid.detail


def test_peak_inside_verdict() -> None:
    def run(v: float) -> dict:
        return {"p": _table("linear_probe_top1", {4: v}, label="shape")}

    check = {"metric": "linear_probe_top1", "label": "shape", "layers": "last", "peak_inside": True}
    assert evaluate(check, {"0": run(20), "0.5": run(60), "1": run(50)}, {}).agrees is True
    assert evaluate(check, {"0": run(20), "0.5": run(40), "1": run(50)}, {}).agrees is False
    named = evaluate(check, {"0": run(20), "0.5": run(60), "1": run(50)}, {"0": "lam 0", "0.5": "lam 0.5", "1": "lam 1"})
    assert named.detail.startswith("best lam 0.5 (lam 0: 20 +- 0.0005, lam 0.5: 60 +- 0.0005, lam 1: 50 +- 0.0005) (")
    lacking = evaluate(check, {"0": run(20), "0.5": run(60), "1": {}}, {})  # two ends and no inside
    assert lacking == Verdict(None, "not enough models with this metric to find an inner peak")


def test_a_list_label_is_resolved_over_every_layer_so_the_detail_names_the_missing_layer() -> None:
    """The tables have shape (not class) at layer 4 only: a claim on layer 1 lacks the layer, not
    the label."""
    tables = {"cl": {"k": _table("knn_top1", {4: 90}, label="shape")}, "mim": {"k": _table("knn_top1", {4: 50}, label="shape")}}
    check = {"metric": "knn_top1", "label": ["shape", "class"], "layers": [1], "greater": "cl", "than": "mim"}
    assert evaluate(check, tables, {"cl": "CL"}) == Verdict(
        None, "no results for knn_top1, label shape, layers 1: CL: no layer [1]; it has layers 4; mim: no layer [1]; "
              "it has layers 4")


def test_differences_within_two_standard_errors_leave_the_claim_undecided() -> None:
    def accuracy(v: float, n: int) -> dict:
        return {"k": _table("knn_top1", {4: v}, label="shape", n=n, std=float("nan"))}

    check = {"metric": "knn_top1", "label": "shape", "layers": "last", "greater": "cl", "than": "mim"}
    # 23.2 vs 21.2 on 99 images: SEs 4.2 and 4.0, the gap is 0.3 of 2 combined SEs
    close = evaluate(check, {"cl": accuracy(23.2, 99), "mim": accuracy(21.2, 99)}, {})
    assert close.agrees is None
    assert "knn_top1, label shape, layers last" in close.detail and "+- 4.2" in close.detail
    # 10 of 10 against 7 of 10: the plain binomial error of 100% is 0, which would decide it
    # (30 > 2 x 14.5); with Agresti-Coull's errors (9.4 and 12.8) it is undecided
    assert evaluate(check, {"cl": accuracy(100.0, 10), "mim": accuracy(70.0, 10)}, {}).agrees is None
    assert evaluate(check, {"cl": accuracy(100.0, 30), "mim": accuracy(0.0, 30)}, {}).agrees is True
    # the same gap on 100000 images is decided
    assert evaluate(check, {"cl": accuracy(23.2, 100000), "mim": accuracy(21.2, 100000)}, {}).agrees is True
    assert evaluate(check, {"cl": accuracy(21.2, 100000), "mim": accuracy(23.2, 100000)}, {}).agrees is False

    def per_image(v: float, std: float) -> dict:
        return {"d": _table("attention_distance_px", {4: v}, std=std, n=400)}

    check = {"metric": "attention_distance_px", "layers": "last", "greater": "cl", "than": "mim"}
    assert evaluate(check, {"cl": per_image(17.0, 2.0), "mim": per_image(16.8, 2.0)}, {}).agrees is None
    assert evaluate(check, {"cl": per_image(17.0, 0.1), "mim": per_image(16.8, 0.1)}, {}).agrees is True
    # the errors combine in quadrature: SEs 2 / sqrt(400) = 0.1 give 2 x 0.141 = 0.283 < 0.3 (summed: 0.4 > 0.3)
    assert evaluate(check, {"cl": per_image(17.0, 2.0), "mim": per_image(16.7, 2.0)}, {}).agrees is True
    # a value over several layers carries the mean of their errors (0.1 and 0.3: 0.2), not the smallest
    two = {k: {"d": pd.concat([_table("attention_distance_px", {3: v}, std=1.0, n=100),
                               _table("attention_distance_px", {4: v}, std=3.0, n=100)])} for k, v in (("cl", 10.0), ("mim", 9.5))}
    averaged = evaluate({**check, "layers": "all"}, two, {})
    assert averaged.agrees is None and "10 +- 0.2 vs" in averaged.detail


def test_a_gap_below_min_difference_is_undecided_however_small_its_error() -> None:
    def per_image(v: float) -> dict:
        return {"d": _table("attention_distance_px", {4: v}, std=0.1, n=10000)}

    check = {"metric": "attention_distance_px", "layers": "last", "greater": "cl", "than": "mim"}
    tables = {"cl": per_image(17.0), "mim": per_image(16.5)}
    assert evaluate(check, tables, {}).agrees is True  # 0.5 px is 350 standard errors
    small = evaluate({**check, "min_difference": 1}, tables, {})
    assert small.agrees is None and "decided beyond 2 and a difference over 1)" in small.detail
    assert evaluate({**check, "min_difference": 0.4}, tables, {}).agrees is True
    assert evaluate({**check, "greater": "mim", "than": "cl", "min_difference": 0.4}, tables, {}).agrees is False
    # without errors the gap alone decides; a tie is undecided
    bare = {k: {"d": _table("attention_distance_px", {4: v}, std=float("nan"))} for k, v in (("cl", 17.0), ("mim", 16.5))}
    assert evaluate({**check, "min_difference": 1}, bare, {}).agrees is None
    assert evaluate({**check, "min_difference": 0.25}, bare, {}).agrees is True
    assert evaluate({**check, "min_difference": 0.5}, bare, {}).agrees is None  # a gap of exactly 0.5 is not over it
    assert evaluate(check, {"cl": bare["cl"], "mim": bare["cl"]}, {}).agrees is None

    def run(v: float) -> dict:
        return {"p": _table("linear_probe_top1", {4: v}, label="shape")}

    peak = {"metric": "linear_probe_top1", "label": "shape", "layers": "last", "peak_inside": True}
    sweep = {"0": run(50.0), "0.5": run(52.0), "1": run(40.0)}
    assert evaluate(peak, sweep, {}).agrees is True
    assert evaluate({**peak, "min_difference": 3}, sweep, {}).agrees is None


def test_a_value_missing_for_want_of_images_decides_nothing() -> None:
    """A probe with no held-out image has NaN everywhere (n = 0): NaN against NaN, or against a
    number, is undecided, not a disagreement; NaN rows beside numbers are left out of the mean."""
    def accuracy(values: dict[int, float]) -> dict:
        return {"k": _table("knn_top1", values, label="shape", n=0, std=float("nan"))}

    nan = float("nan")
    check = {"metric": "knn_top1", "label": "shape", "layers": "last", "greater": "cl", "than": "mim"}
    for cl, mim in ((nan, nan), (nan, 30.0), (30.0, nan)):
        verdict = evaluate(check, {"cl": accuracy({4: cl}), "mim": accuracy({4: mim})}, {"cl": "MoCo v3"})
        assert verdict.agrees is None and "no value to compare (no image scored" in verdict.detail
        assert verdict.detail.startswith("MoCo v3 ")
    one_head = {"a": _table("head_diversity_jsd", {4: nan}, n=64, std=nan)}  # one head: no pair to compare
    two_heads = {"a": _table("head_diversity_jsd", {4: 0.2}, n=64, std=0.05)}
    verdict = evaluate({"metric": "head_diversity_jsd", "layers": "last", "greater": "b", "than": "a"},
                       {"a": one_head, "b": two_heads}, {})
    assert verdict.agrees is None and "head diversity of a model with one head" in verdict.detail
    assert "no standard error" not in verdict.detail  # the value is missing, not its error
    scored = {"k": _table("knn_top1", {3: 50.0}, label="shape", n=100, std=nan)}
    halves = {"cl": {"k": pd.concat([scored["k"], accuracy({4: nan})["k"]])},
              "mim": {"k": _table("knn_top1", {3: 20.0, 4: 10.0}, label="shape", n=100, std=nan)}}
    assert evaluate({**check, "layers": "all"}, halves, {}).agrees is True  # 50 against 15
    peak = {"metric": "knn_top1", "label": "shape", "layers": "last", "peak_inside": True}
    sweep = {"0": accuracy({4: 20.0}), "0.5": accuracy({4: nan}), "1": accuracy({4: 30.0}), "2": accuracy({4: 10.0})}
    holed = evaluate(peak, sweep, {"0.5": "lambda 0.5"})
    assert holed.agrees is None and holed.detail.startswith("no value for lambda 0.5 (no image scored")


def test_an_inner_peak_within_noise_of_an_end_is_undecided() -> None:
    def run(v: float) -> dict:
        return {"p": _table("linear_probe_top1", {4: v}, label="shape", n=99, std=float("nan"))}

    check = {"metric": "linear_probe_top1", "label": "shape", "layers": "last", "peak_inside": True}
    assert evaluate(check, {"0": run(22.2), "0.5": run(23.2), "1": run(20.2)}, {}).agrees is None
    assert evaluate(check, {"0": run(20.0), "0.5": run(60.0), "1": run(30.0)}, {}).agrees is True
    # an end that is best only within noise leaves it undecided too; one clearly best refutes it
    assert evaluate(check, {"0": run(24.2), "0.25": run(18.2), "0.5": run(22.2), "1": run(22.2)},
                    {}).agrees is None
    assert evaluate(check, {"0": run(60.0), "0.5": run(30.0), "1": run(20.0)}, {}).agrees is False
    # an end refutes the peak only when it beats every inner model: 60 beats 20 but not 58
    assert evaluate(check, {"0": run(60.0), "0.25": run(58.0), "0.5": run(20.0), "1": run(10.0)}, {}).agrees is None


def test_a_list_label_reads_the_first_label_the_data_has() -> None:
    def accuracy(v: float, label: str) -> dict:
        return {"k": _table("knn_top1", {4: v}, label=label)}

    check = {"metric": "knn_top1", "label": ["shape", "class"], "layers": "last", "greater": "cl", "than": "mim"}
    folder = evaluate(check, {"cl": accuracy(70, "class"), "mim": accuracy(40, "class")}, {})
    assert folder.agrees is True and "label class" in folder.detail
    both = {"cl": {"k": pd.concat([_table("knn_top1", {4: 30}, label="shape"),
                                   _table("knn_top1", {4: 90}, label="class")])},
            "mim": {"k": pd.concat([_table("knn_top1", {4: 50}, label="shape"),
                                    _table("knn_top1", {4: 10}, label="class")])}}
    shape_first = evaluate(check, both, {})
    assert shape_first.agrees is False and "label shape" in shape_first.detail
    missing = evaluate(check, {"cl": accuracy(70, "digit"), "mim": accuracy(40, "digit")}, {})
    assert missing.agrees is None and "no results for knn_top1, label shape or class" in missing.detail
    assert "cl: no label shape or class; it has digit" in missing.detail


def test_select_rows_reads_the_named_frequency_and_rank_and_ignores_a_label_the_table_lacks() -> None:
    """A frequency is matched exactly (0.5 is not 0.55), a rank axis is read at rank 1 unless the
    check names another, and a table without labels is read whole for a check with a label."""
    curve = pd.concat([_table("delta_log_amplitude", {4: v}, frequency=f) for f, v in ((0.5, -1.0), (0.55, -2.0))])
    assert list(select_rows(curve, {"metric": "delta_log_amplitude", "frequency": 0.5})["value"]) == [-1.0]
    assert list(select_rows(curve, {"metric": "delta_log_amplitude"})["value"]) == [-2.0]  # the highest
    spectrum = pd.concat([_table("log_singular_value_token", {4: v}, rank=r) for r, v in ((1, 3.0), (2, 1.0))])
    assert list(select_rows(spectrum, {"metric": "log_singular_value_token"})["value"]) == [3.0]
    assert list(select_rows(spectrum, {"metric": "log_singular_value_token", "rank": 2})["value"]) == [1.0]
    unlabelled = _table("nmi", {1: 0.1, 2: 0.2})
    assert list(select_rows(unlabelled, {"metric": "nmi", "label": "shape", "layers": "last"})["layer"]) == [2]


def test_a_rows_standard_error_needs_images_and_an_accuracy_in_percent() -> None:
    from vitprobe.claims import row_standard_error, summary_value

    assert row_standard_error({"metric": "attention_distance_px", "value": 3.0, "n": 4, "std": 1.0}) == 0.5
    assert row_standard_error({"metric": "attention_distance_px", "value": 3.0, "n": 0, "std": 1.0}) is None
    assert row_standard_error({"metric": "knn_top1", "value": 150.0, "n": 10}) is None  # not a percentage
    assert row_standard_error({"metric": "knn_top1", "value": 50.0, "n": 10}) is not None
    # one row without an error: the mean has none, rather than the others' errors averaged over all rows
    rows = pd.concat([_table("attention_distance_px", {3: 10.0}, n=100, std=1.0),
                      _table("attention_distance_px", {4: 12.0}, n=float("nan"), std=1.0)])
    estimate = summary_value({"d": rows}, {"metric": "attention_distance_px"})
    assert estimate.value == 11.0 and estimate.se is None and estimate.layers == (3, 4)


def test_a_detail_names_given_layers_once_and_a_missing_layer_of_a_curve_read_at_its_highest_frequency() -> None:
    tables = {"cl": {"a": _table("nmi", {4: 0.5})}, "mim": {"a": _table("nmi", {4: 0.1})}}
    verdict = evaluate({"metric": "nmi", "layers": [4], "greater": "cl", "than": "mim"}, tables, {})
    assert verdict.agrees is True and "(nmi, layers 4; +- 1 standard error" in verdict.detail

    def fourier(value: float) -> dict:
        return {"f": pd.concat([_table("delta_log_amplitude", {4: value}, frequency=f) for f in (0.25, 0.5)])}

    missing = evaluate({"metric": "delta_log_amplitude", "layers": [9], "greater": "mim", "than": "cl"},
                       {"cl": fourier(-1.0), "mim": fourier(-2.0)}, {})
    assert missing.agrees is None
    assert missing.detail.endswith("mim: no layer [9]; it has layers 4; cl: no layer [9]; it has layers 4")


def test_a_key_given_twice_is_refused_with_its_line(tmp_path: Path) -> None:
    text = (RECIPE_DIR / "cl_vs_mim.yaml").read_text(encoding="utf-8")
    lines = text.splitlines()
    second = lines.index("  simmim:")
    lines[second] = "  mocov3:"
    path = tmp_path / "twice.yaml"
    path.write_text("\n".join(lines))
    with pytest.raises(ConfigError, match=rf"twice.yaml \(line {second + 1}\): key 'mocov3' is given twice"):
        load_recipe(path)


def test_a_yaml_file_that_is_a_folder_missing_not_text_or_broken_is_one_line(tmp_path: Path) -> None:
    from vitprobe.yaml_files import read_yaml_mapping

    def read(path: Path) -> dict:
        return read_yaml_mapping(path, "recipe", "a recipe is a mapping", "; built-in recipes: a, b")

    (tmp_path / "folder").mkdir()
    with pytest.raises(ConfigError, match=r"folder: is a folder; give a recipe \.yaml file$"):
        read(tmp_path / "folder")
    with pytest.raises(ConfigError, match=r"nope.yaml: no such recipe file; built-in recipes: a, b$"):
        read(tmp_path / "nope.yaml")
    path = tmp_path / "r.yaml"
    path.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(ConfigError, match=r"r.yaml: not a text file; give a recipe \.yaml file$"):
        read(path)
    path.write_text("name: x\nmodels: [a, b\nanalyses: c\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"r.yaml \(line 3\): not valid YAML; fix the syntax$"):
        read(path)
    # merge keys (<<) are no repeated keys; UTF-8 text is read as such
    path.write_text("base: &b {lr: 0.1, note: café}\nrun:\n  <<: *b\n  lr: 0.2\n", encoding="utf-8")
    assert read(path) == {"base": {"lr": 0.1, "note": "café"}, "run": {"lr": 0.2, "note": "café"}}


def test_all_analyses_and_params_reach_the_recipe(tmp_path: Path) -> None:
    from vitprobe.analyzers import list_analyzers

    path = _write(tmp_path, analyses="all", claims=[], params={"knn": {"k": 5, "pooling": "mean"}})
    recipe = load_recipe(path, params={"knn": {"k": 7}})
    assert recipe.analyses == list_analyzers()  # the synthetic set feeds every analysis
    assert recipe.params == {"knn": {"k": 7, "pooling": "mean"}}  # the caller's value wins


def test_other_data_warns_that_a_claims_label_is_missing_instead_of_failing() -> None:
    with pytest.warns(UserWarning, match=r"label \['shape', 'class'\]: the data has digit, so the claim will be undecided"):
        load_recipe("cl_vs_mim", data="digits")


def test_a_sweep_draws_figures_only_for_the_probes_it_runs(tmp_path: Path) -> None:
    raw = yaml.safe_load((RECIPE_DIR / "hybrid_sweep.yaml").read_text(encoding="utf-8"))
    raw["sweep"]["train"] = str(RECIPE_DIR / raw["sweep"]["train"])
    raw["analyses"] = ["linear_probe"]
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert load_recipe(path).extra_figures == ["sweep_linear_probe"]
    raw["claims"][0]["figure"] = "sweep_knn"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="claim figure 'sweep_knn' is not drawn"):
        load_recipe(path)


def test_all_on_data_that_skips_an_analysis_drops_its_params_and_claims(tmp_path: Path) -> None:
    jaccard = {"figure": "attention_jaccard", "text": "t",
               "check": {"metric": "jaccard_best_head", "greater": "mocov3", "than": "simmim"}}
    path = _write(tmp_path, analyses="all", params={"attention_jaccard": {"keep_mass": 0.5}}, claims=[jaccard])
    assert load_recipe(path).params == {"attention_jaccard": {"keep_mass": 0.5}}
    with pytest.warns(UserWarning, match=r"claim on jaccard_best_head: analysis attention_jaccard is skipped .*undecided"):
        recipe = load_recipe(path, data="digits")
    assert "attention_jaccard" not in recipe.analyses and recipe.params == {} and len(recipe.claims) == 1
    assert list(recipe.skipped) == ["attention_jaccard"]  # the report lists it, with why
    own = _write(tmp_path, analyses="all", data="digits", claims=[jaccard])
    with pytest.raises(ConfigError, match=r"claim on jaccard_best_head: analysis attention_jaccard is skipped"):
        load_recipe(own)


def test_claims_read_what_the_verdicts_read_and_yaml_errors_stay_one_line(tmp_path: Path) -> None:
    lenient = {"figure": "fourier", "text": "t", "check": {"metric": "delta_log_amplitude", "layers": ["3", 4],
                                                           "frequency": "0.5", "peak_inside": False,
                                                           "greater": "simmim", "than": "mocov3"}}
    assert load_recipe(_write(tmp_path, claims=[lenient])).claims[0].check["layers"] == ["3", 4]
    path = tmp_path / "complex.yaml"
    path.write_text("name: x\n? [a, b]\n: 1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_recipe(path)


@pytest.mark.parametrize("changes, message", [
    ({"models": {"a": {"train": {"method": "mae"}}, "b": {"random_like": "c"}, "c": {"random_like": "a"}}},
     r"model 'b': random_like names 'c', which is not a trained or loaded model"),
    ({"models": {"a": {"train": {"method": "mae"}}, "b": {"random_like": "b"}}}, r"random_like names 'b', which is not"),
    ({"models": {"a": {"train": {"method": "mae"}}}, "figures": ["reconstructions"]},
     r"figures: reconstructions draws what GMML's decoder rebuilds, and no model trains with method gmml"),
    ({"name": "x" * 101}, r"use up to 100 letters"),
    ({"models": {"a": {"checkpoint": None}}}, r"model 'a': checkpoint must be the path of a file, got None"),
    ({"quick": {"dataa": "synthetic:32"}}, r"quick: unknown keys \['dataa'\]"),
    ({"quick": {"train": {"epochss": 1}}}, r"quick.train: .*epochss"),
    ({"quick": {"train": {"teacher_temp": 0.1}}},  # named with the objectives that have it, not a stand-in's
     r"quick.train: unknown training option\(s\) \['teacher_temp'\]; .*; teacher_temp \(of dino\) is a hyper-parameter: put it under hparams:$"),
    ({"params": {"knn": {"layers": [9]}}}, r"params: knn.layers \[9\] lie outside the blocks knn reads in every model \(0..4: the shallowest has 4\)"),
    ({"claims": [_claim(layers=[1, 99])]}, r"claim check layers \[99\] lie beyond the models' blocks \(the deepest has 4\)"),
    ({"claims": [{"figure": "attention_distance", "text": "t", "check": {
        "metric": "attention_distance_px", "greater": "mocov3", "than": "simmim", "layers": [0, 2]}}]},
     r"claim check layers \[0\] lie below the first block attention_distance reads \(1: attention begins in block 1\)"),
    ({"claims": [_claim(min_difference=-1)]}, r"claim check min_difference must be a number >= 0 in the metric's units, got -1"),
    ({"claims": [_claim(min_difference="2 px")]}, r"min_difference must be a number >= 0 .*got '2 px'"),
    ({"claims": [_claim(), {"figure": "knn", "txt": "t", "check": {}}]},
     r"recipe.yaml: claim 2: each claim needs figure, text and check; missing text; unknown keys \['txt'\]"),
    ({"claims": [{"figure": "token_similarity", "text": "t", "check": {
        "metric": "log_singular_value_token", "rank": 0, "greater": "mocov3", "than": "simmim"}}]},
     r"claim 1: claim check rank must be a whole number >= 1"),
    ({"claims": [_claim(rank=1)]}, r"claim check rank: metric knn_top1 \(knn\) has no rank to select"),
    ({"data": "synthetic:64x"}, r"recipe.yaml: dataset spec 'synthetic:64x'"),
    ({"analyses": []}, r"recipe.yaml: no analyses given"),
    ({"claims": [{"figure": "knn", "text": "t", "check": {"metric": "knn_top1", "label": "shape", "peak_inside": True}}]},
     r"claim 1: claim check peak_inside needs at least 3 models"),
    ({"claims": [_claim(peak_inside=True)]}, r"claim 1: claim check peak_inside: true takes no greater/than"),
])
def test_more_mistakes_fail_in_one_line_naming_the_recipe(tmp_path: Path, changes: dict, message: str) -> None:
    if "models" in changes:
        changes = {"claims": [], **changes}
    with pytest.raises(ConfigError, match=message) as err:
        load_recipe(_write(tmp_path, **changes))
    assert "\n" not in str(err.value)


def test_a_mistake_in_a_training_config_file_names_that_file(tmp_path: Path) -> None:
    typo = tmp_path / "train" / "typo.yaml"
    typo.parent.mkdir()
    typo.write_text("method: simmim\nepochz: 3\n")
    path = _write(tmp_path, models={"a": {"train": str(typo)}}, claims=[])
    with pytest.raises(ConfigError, match=rf"recipe.yaml: model 'a' \(training config {typo}\): unknown "
                                          r"training option\(s\) \['epochz'\]"):
        load_recipe(path)


def test_a_bad_param_from_the_command_line_is_blamed_on_param_not_the_recipe(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^--param: analysis 'knn': k must be a whole number >= 1"):
        load_recipe(_write(tmp_path), params={"knn": {"k": 0}})


def test_quick_checks_the_full_size_data_and_is_named_only_where_it_changes_something(tmp_path: Path) -> None:
    """`data: digit` passed under --quick (its quick: block replaced it); a recipe without a
    quick: block was reported as "run with --quick" though it ran as written."""
    with pytest.raises(ConfigError, match=r"recipe.yaml: data: dataset spec 'digit': unknown dataset kind"):
        load_recipe(_write(tmp_path, data="digit"), quick=True)
    assert load_recipe(_write(tmp_path, data="folder:not_here"), quick=True).data != "folder:not_here"  # form only
    assert load_recipe(_write(tmp_path), quick=True).changes == ["--quick"]
    blockless = _write(tmp_path, quick={})
    with pytest.warns(UserWarning, match="has no quick: block, so it runs at full size"):
        assert load_recipe(blockless, quick=True, seed=3).changes == ["--seed 3"]


def test_the_callers_training_options_win_over_the_quick_block_which_wins_over_the_config(tmp_path: Path) -> None:
    """--quick merges quick.train into every training config, and the caller's own overrides
    (--seed, and train_overrides, which tests use to shrink runs) go over both."""
    path = _write(tmp_path, quick={"data": "synthetic:512", "train": {"epochs": 16, "seed": 5}})
    quick = load_recipe(path, quick=True)
    assert [(m.train["epochs"], m.train["seed"]) for m in quick.models] == [(16, 5), (16, 5)]
    given = load_recipe(path, quick=True, seed=7, train_overrides={"epochs": 1})
    assert [(m.train["epochs"], m.train["seed"]) for m in given.models] == [(1, 7), (1, 7)]
    assert given.changes == ["--quick", "--seed 7", "train epochs=1"]


def test_batch_size_defaults_to_32_and_models_and_sweep_exclude_each_other(tmp_path: Path) -> None:
    raw = yaml.safe_load(_write(tmp_path).read_text(encoding="utf-8"))
    del raw["batch_size"]
    path = tmp_path / "default.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert load_recipe(path).batch_size == 32
    sweep = {"parameter": "lam", "values": [0.0, 1.0], "train": str(RECIPE_DIR / "train" / "hybrid_tiny_synthetic.yaml")}
    with pytest.raises(ConfigError, match=r"recipe.yaml: give either `models` or `sweep`, exactly one"):
        load_recipe(_write(tmp_path, sweep=sweep))


def test_layer_numbers_are_checked_against_the_shallowest_model_in_params_and_the_deepest_in_claims(
        tmp_path: Path) -> None:
    """A 2-block checkpoint beside a 4-block trained model: params' layers must exist in both
    (every model is analysed at them), a claim's in the deeper one (each model averages what it has)."""
    ckpt = _tiny_checkpoint(tmp_path / "two_blocks.safetensors")
    models = {"mocov3": {"checkpoint": str(ckpt)}, "simmim": {"train": {"method": "simmim", "preset": "tiny"}}}
    with pytest.raises(ConfigError, match=r"params: knn.layers \[3\] lie outside the blocks knn reads in every model "
                                          r"\(0..2: the shallowest has 2\)"):
        load_recipe(_write(tmp_path, models=models, claims=[], params={"knn": {"layers": [3]}}))
    recipe = load_recipe(_write(tmp_path, models=models, claims=[_claim(layers=[3, 4])], params={}))
    assert recipe.claims[0].check["layers"] == [3, 4]
    with pytest.raises(ConfigError, match=r"claim check layers \[5\] lie beyond the models' blocks \(the deepest has 4\)"):
        load_recipe(_write(tmp_path, models=models, claims=[_claim(layers=[5])], params={}))


@pytest.mark.parametrize("heads", [0, "two", 2.5])
def test_a_head_count_from_the_command_line_is_checked_in_one_line(tmp_path: Path, heads: object) -> None:
    ckpt = _tiny_checkpoint(tmp_path / "dino.safetensors")
    with pytest.raises(ConfigError, match=rf"--num-heads dino must be a whole number >= 1, got {heads!r}$"):
        load_recipe("dino_attention", checkpoints={"dino": str(ckpt)}, num_heads={"dino": heads})


def test_a_gmml_model_given_as_a_file_warns_of_its_reconstructions_only_where_the_recipe_draws_them(
        tmp_path: Path) -> None:
    ckpt = _tiny_checkpoint(tmp_path / "gmml.safetensors")
    path = _write(tmp_path, models={"gmml": {"train": {"method": "gmml", "preset": "tiny"}},
                                    "mae": {"train": {"method": "mae", "preset": "tiny"}}}, claims=[])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no reconstructions figure: nothing is lost
        recipe = load_recipe(path, checkpoints={"gmml": str(ckpt)})
    assert recipe.extra_figures == [] and next(m for m in recipe.models if m.key == "gmml").train is None


@pytest.mark.parametrize("objective, role, family", [  # family: the one warned of, None for no warning
    ("gmml", "mim", None), ("gmml", "cl", "mim"), ("mocov3", "mim", "cl"), ("random_init", "baseline", None),
    ("dino", "baseline", "cl"), ("mae", "teacher", None),  # a role of the recipe's own words: nothing to check
])
def test_a_files_training_objective_is_checked_against_the_models_role(tmp_path: Path, objective: str, role: str,
                                                                        family: str | None) -> None:
    from vitprobe.models.architecture import ArchSpec, build_model
    from vitprobe.models.own_format import save_encoder

    arch = ArchSpec(patch_size=8, embed_dim=32, depth=2, num_heads=2, img_size=32)
    ckpt = save_encoder(tmp_path / "given.safetensors", build_model(arch), arch, {"objective": objective})
    path = _write(tmp_path, models={"a": {"role": role, "checkpoint": str(ckpt)}}, claims=[])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_recipe(path)
    said = [str(w.message) for w in caught if "its role is" in str(w.message)]
    assert said == ([f"{path}: model 'a': its role is {role}, but {ckpt} is a {objective} checkpoint ({family}); "
                     "check that the file is meant for this model"] if family else [])


def test_a_checkpoint_that_does_not_fit_its_architecture_fails_before_any_training(tmp_path: Path) -> None:
    import timm
    import torch

    odd = tmp_path / "odd.pth"
    torch.save({**timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, embed_dim=32, depth=2,
                                    num_heads=2, num_classes=0).state_dict(), "extra": torch.ones(1)}, odd)
    with pytest.raises(ConfigError, match=r"recipe.yaml: model 'a': checkpoint .*odd.pth \(timm\) does not fit .*"
                                          r"unexpected 1 key \(extra\)"):
        load_recipe(_write(tmp_path, models={"a": {"checkpoint": str(odd), "num_heads": 2}}, claims=[]))


def test_params_reach_the_recipe_as_the_analysis_reads_them_and_claims_read_their_layers(tmp_path: Path) -> None:
    """knn.layers: 2,4 (as --param writes it) is the list [2, 4], against which a claim's layers
    (numbers, or text that reads as one) are checked."""
    recipe = load_recipe(_write(tmp_path, params={"knn": {"layers": "2,4"}, "fourier": {"layers": 4}},
                                claims=[_claim(layers=["2", 4])]))
    assert recipe.params == {"knn": {"layers": [2, 4]}, "fourier": {"layers": [4]}}
    assert recipe.claims[0].check["layers"] == ["2", 4]


def test_a_list_label_is_accepted_where_the_data_has_any_of_its_labels(tmp_path: Path) -> None:
    """[class, shape] on the synthetic set (shape, texture) reads shape; a list of none of them fails."""
    recipe = load_recipe(_write(tmp_path, claims=[_claim(label=["class", "shape"])]))
    assert recipe.claims[0].check["label"] == ["class", "shape"]
    with pytest.raises(ConfigError, match=r"claim check label \['class', 'digit'\]: the data has shape, texture; "
                                          r"name one of them"):
        load_recipe(_write(tmp_path, claims=[_claim(label=["class", "digit"])]))

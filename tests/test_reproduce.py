"""Every recipe runs end to end in a reduced form and writes every figure it names."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pytest
import torch

from vitprobe.errors import OutputExistsError, VitprobeWarning
from vitprobe.recipes import RECIPES, Recipe, load_recipe
from vitprobe.reproduce import reproduce

# One epoch of 2 steps on 32 images, analysed on 24: enough to exercise every path.
SHRINK = {"data": "synthetic:32", "epochs": 1, "batch_size": 16}


@pytest.mark.slow
@pytest.mark.parametrize("name", RECIPES)
def test_recipe_end_to_end(tmp_path: Path, name: str) -> None:
    [report] = reproduce([name], tmp_path, quick=True, data="synthetic:24",
                         train_overrides=SHRINK, progress=False)
    root = tmp_path / name
    assert report == root / "report.html"
    page = report.read_text(encoding="utf-8")
    recipe = load_recipe(name, quick=True)
    figures = root / "figures"
    for analysis in recipe.analyses:
        assert (figures / f"{analysis}.png").stat().st_size > 0
        assert (figures / f"{analysis}.csv").stat().st_size > 0
    for claim in recipe.claims:
        assert (figures / f"{claim.figure}.png").is_file(), claim.figure
        assert claim.text.split(" (")[0][:40].replace("&", "&amp;") in page.replace("&#x27;", "'")
    verdicts = json.loads((root / "verdicts.json").read_text(encoding="utf-8"))
    assert len(verdicts) == len(recipe.claims)
    assert all(v["agrees"] in (True, False, None) and v["detail"] for v in verdicts)
    for entry in recipe.models:
        assert (root / "runs" / entry.key / "report.html").is_file()
        assert f"<b>{entry.label}</b> ({entry.role}):" in page or not entry.role
    if "reconstructions" in recipe.figures:
        assert list(figures.glob("reconstructions_*.png"))


@pytest.mark.slow
def test_a_rerun_reuses_the_models_and_replaces_the_recipes_own_figures(tmp_path: Path, monkeypatch,
                                                                       capsys) -> None:
    """sit_gmml draws figures beyond the comparison (reconstructions): a second run over the
    first reuses the trained model (unless its objective's revision or a preset value went up) and replaces them
    (they once counted as foreign files); a file of the user's own in figures/ is still never
    deleted."""
    def run(progress: bool = False) -> None:
        reproduce(["sit_gmml"], tmp_path, quick=True, data="synthetic:16",
                  train_overrides=SHRINK, progress=progress)

    run()
    assert capsys.readouterr().err == ""  # progress=False: no training or analysis bars either
    final = tmp_path / "sit_gmml" / "models" / "gmml" / "final.safetensors"
    figures = tmp_path / "sit_gmml" / "figures"
    stamp, drawn = final.stat().st_mtime_ns, (figures / "reconstructions_gmml.png").stat().st_mtime_ns
    run(progress=True)
    said = capsys.readouterr().out
    assert "gmml: reusing" in said and "sit_gmml: replacing the results of an earlier run" in said
    assert final.stat().st_mtime_ns == stamp
    assert (figures / "reconstructions_gmml.png").stat().st_mtime_ns > drawn
    # a new revision of the objective's maths is retrained, not reused
    from vitprobe.train.objectives import objective_class

    revision = objective_class("gmml").revision
    monkeypatch.setattr(objective_class("gmml"), "revision", revision + 1)
    run(progress=True)
    assert final.stat().st_mtime_ns > stamp
    assert (f"(its training config or objective changed since {final.parent} was trained: the objective's "
            f'revision {{"gmml": {revision}}} -> {{"gmml": {revision + 1}}}; the earlier model is kept in'
            ) in capsys.readouterr().out
    assert not (final.parent.parent / ".gmml.replaced").exists()  # dropped once the retrain finished
    # so is a preset value that changed in code (not in the recipe's config, and not by a revision)
    from vitprobe.train import config as train_config

    stamp = final.stat().st_mtime_ns
    tiny = train_config.PRESET_HPARAMS["tiny"]
    monkeypatch.setitem(tiny, "gmml", {**tiny["gmml"], "out_dim": tiny["gmml"]["out_dim"] * 2})
    run(progress=True)
    assert final.stat().st_mtime_ns > stamp
    assert (f"hyper-parameter out_dim {tiny['gmml']['out_dim'] // 2} -> {tiny['gmml']['out_dim']}; "
            "the earlier model is kept in") in capsys.readouterr().out
    # a model whose record predates the encoder and hyper-parameters in it is not trusted
    record = json.loads((final.parent / "finished.json").read_text(encoding="utf-8"))
    for name in ("started.json", "finished.json"):
        (final.parent / name).write_text(json.dumps({k: v for k, v in record.items()
                                                     if k not in ("encoder", "hparams_in_force")},
                                                    sort_keys=True), encoding="utf-8")
    stamp = final.stat().st_mtime_ns
    run(progress=True)
    assert final.stat().st_mtime_ns > stamp
    assert ("encoder not recorded (by an older vitprobe), hyper-parameter not recorded (by an older vitprobe)"
            in capsys.readouterr().out)
    # given the trained model as a checkpoint, the recipe draws no reconstruction: the old one goes
    reproduce(["sit_gmml"], tmp_path, quick=True, data="synthetic:16", train_overrides=SHRINK,
              checkpoints={"gmml": str(final)}, progress=False)
    assert not (figures / "reconstructions_gmml.png").exists()
    run()
    (figures / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="notes.txt"):
        run()
    assert (figures / "notes.txt").read_text(encoding="utf-8") == "mine" and (figures / "reconstructions_gmml.png").is_file()


def test_the_command_prints_each_report_with_its_tally_of_verdicts(tmp_path: Path, monkeypatch, capsys) -> None:
    import vitprobe.reproduce as reproduce_module
    from vitprobe.cli import main

    seen = []

    def fake_reproduce(recipes, out, **options):
        seen.append((options["progress"], options["checkpoints"], options["seed"]))
        reports = []
        for name, agrees in (("a", [True, None, False, None]), ("b", [True])):
            (Path(out) / name).mkdir(parents=True)
            (Path(out) / name / "verdicts.json").write_text(json.dumps([{"agrees": v} for v in agrees]))
            reports.append(Path(out) / name / "report.html")
        (Path(out) / "index.html").write_text("<ul></ul>")
        return reports

    monkeypatch.setattr(reproduce_module, "reproduce", fake_reproduce)
    assert main(["reproduce", "cl_vs_mim", "dino_attention", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"{tmp_path / 'a' / 'report.html'}  (1 / 1 / 2)" in out
    assert f"{tmp_path / 'b' / 'report.html'}  (1 / 0 / 0)" in out
    assert f"index: {tmp_path / 'index.html'}" in out
    assert main(["reproduce", "cl_vs_mim", "--out", str(tmp_path / "quiet"), "--no-progress",
                 "--model", "dino=runs/1.pth", "--model", "mae=a=b.pth", "--seed", "3"]) == 0
    assert seen == [(True, {}, None), (False, {"dino": "runs/1.pth", "mae": "a=b.pth"}, 3)]
    for models in (["dino=1.pth", "dino=2.pth"], ["dino="], ["dino"]):
        code = main(["reproduce", "cl_vs_mim", "--out", str(tmp_path / "bad")] +
                    [a for m in models for a in ("--model", m)])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("vitprobe: error: --model") and err.count("\n") == 1, err
    assert len(seen) == 2 and not (tmp_path / "bad").exists()


def test_a_model_folder_reproduce_did_not_train_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "sit_gmml" / "models" / "gmml"
    folder.mkdir(parents=True)
    (folder / "mine.txt").write_text("keep")
    with pytest.raises(OutputExistsError, match="holds files that reproduce did not train"):
        reproduce(["sit_gmml"], tmp_path, quick=True, data="synthetic:16", train_overrides=SHRINK,
                  progress=False)
    assert (folder / "mine.txt").read_text(encoding="utf-8") == "keep"


def _small_recipe(folder: Path, models: str = "a b") -> Path:
    """A recipe of a saved random encoder and random copies of it: no training, seconds to run."""
    from vitprobe.models.architecture import ArchSpec, build_model
    from vitprobe.models.own_format import save_encoder

    arch = ArchSpec(patch_size=8, embed_dim=32, depth=2, num_heads=2, img_size=32)
    ckpt = folder / "enc.safetensors"
    if not ckpt.exists():
        save_encoder(ckpt, build_model(arch), arch, {"objective": "random_init"})
    entries = {key: ({"checkpoint": ckpt.name} if i == 0 else {"random_like": models.split()[0]})
               for i, key in enumerate(models.split())}
    recipe = {"name": "small", "data": "synthetic:16", "batch_size": 8, "models": entries,
              "analyses": ["attention_distance", "knn"], "params": {"knn": {"k": 3}}}
    path = folder / "small.yaml"
    path.write_text(json.dumps(recipe))  # JSON is YAML
    return path


def test_results_are_replaced_together_or_not_at_all(tmp_path: Path, monkeypatch) -> None:
    import vitprobe.analysis

    out = tmp_path / "out"
    recipe = _small_recipe(tmp_path, "a b c")
    reproduce([str(recipe)], out, progress=False)
    root = out / "small"
    assert sorted(p.name for p in (root / "runs").iterdir()) == ["a", "b", "c"]
    assert sorted(p.name for p in out.iterdir()) == ["small"]  # an index.html for several recipes only
    assert json.loads((root / "runs" / "a" / "knn.json").read_text())["k"] == 3  # the recipe's params
    assert json.loads((root / "runs" / "a" / "knn.json").read_text())["batch_size"] == 8  # the recipe's, not 32
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and "models" not in p.parts}

    real, calls = vitprobe.analysis.analyze, []

    def interrupted_on_the_second_model(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(vitprobe.analysis, "analyze", interrupted_on_the_second_model)
    with pytest.raises(KeyboardInterrupt):
        reproduce([str(recipe)], out, data="synthetic:24", progress=False)
    after = {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and "models" not in p.parts}
    assert after == before  # not one run on synthetic:24 beside runs on synthetic:16
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no staging left
    monkeypatch.undo()
    # a model dropped from the recipe loses its old run; --param (here params=) overrides the recipe's
    reproduce([str(_small_recipe(tmp_path, "a b"))], out, params={"knn": {"k": 5}}, progress=False)
    assert sorted(p.name for p in (root / "runs").iterdir()) == ["a", "b"]
    assert json.loads((root / "runs" / "b" / "knn.json").read_text())["k"] == 5


def test_a_seed_replaces_every_training_seed_and_the_random_baselines(tmp_path: Path) -> None:
    """--seed reaches every training config (quick ones too) and the random_like models: their
    weights are those of the architecture built under that seed, and the report names it."""
    from safetensors.torch import load_file

    from vitprobe.errors import ConfigError
    from vitprobe.models.architecture import ArchSpec, build_model
    from vitprobe.seeding import seeded

    default, seeded_recipe = load_recipe("learning_digits"), load_recipe("learning_digits", quick=True, seed=7)
    trained = [e for e in default.models if e.train is not None]
    assert trained and {e.train["seed"] for e in trained} == {0} and default.random_seed == 0
    assert {e.train["seed"] for e in seeded_recipe.models if e.train is not None} == {7}
    assert seeded_recipe.random_seed == 7
    for bad in (-1, 2**63, 1.5, True):
        with pytest.raises(ConfigError, match=r"^--seed \(Python: seed=\) must be a whole number in \[0, 2\*\*63\)"):
            load_recipe("learning_digits", seed=bad)

    recipe = _small_recipe(tmp_path, "a b")
    weights = {}
    for seed in (None, 3):
        [report] = reproduce([str(recipe)], tmp_path / f"out{seed}", progress=False, seed=seed)
        weights[seed] = load_file(report.parent / "models" / "b" / "final.safetensors")
        assert f"initialisation seed {seed or 0})" in report.read_text(encoding="utf-8")
    with seeded(3):
        expected = build_model(ArchSpec(patch_size=8, embed_dim=32, depth=2, num_heads=2, img_size=32))
    assert all(torch.equal(weights[3][name], value) for name, value in expected.state_dict().items())
    assert not torch.equal(weights[3]["blocks.0.attn.qkv.weight"], weights[None]["blocks.0.attn.qkv.weight"])


def test_a_model_given_for_a_random_baseline_is_used_and_quick_without_a_block_is_warned(tmp_path: Path) -> None:
    """--model random=FILE used to be ignored: the baseline was initialised afresh."""
    from vitprobe.errors import VitprobeWarning
    from vitprobe.models.architecture import ArchSpec, build_model
    from vitprobe.models.own_format import save_encoder
    from vitprobe.seeding import seeded

    recipe = _small_recipe(tmp_path, "a b")  # b: random_like a
    arch = ArchSpec(patch_size=8, embed_dim=32, depth=2, num_heads=2, img_size=32)
    with seeded(5):
        mine = save_encoder(tmp_path / "mine.safetensors", build_model(arch), arch, {"objective": "random_init"})
    with pytest.warns(VitprobeWarning, match=r"small.yaml: --quick, but the recipe has no quick: block, so it runs at full size"):
        [report] = reproduce([str(recipe)], tmp_path / "out", quick=True, checkpoints={"b": str(mine)}, progress=False)
    used = json.loads((report.parent / "runs" / "b" / "run.json").read_text())["checkpoint"]
    assert used["path"] == str(mine.resolve())
    assert not (report.parent / "models" / "b").exists()


def test_the_report_says_where_each_models_weights_come_from() -> None:
    """A trained model names its objective (a file given for another model's role shows it)
    and training seed, a random baseline its initialisation seed, another checkpoint its format."""
    from vitprobe.reproduce import _origin_text

    trained = {"format": "vitprobe", "report": {"training": {"objective": "mae", "config": {"seed": 4}}}}
    assert _origin_text(trained) == ", trained with mae, training seed 4"
    random = {"format": "vitprobe", "report": {"training": {"objective": "random_init", "config": {"seed": 0}}}}
    assert _origin_text(random) == ", initialisation seed 0"
    assert _origin_text({"report": {"training": {"objective": "random_init"}}}) == ""
    assert _origin_text({"format": "dino", "report": {}}) == ", dino format"


def test_a_file_browsers_own_files_are_not_foreign_results(tmp_path: Path) -> None:
    """Finder leaves .DS_Store in every folder it shows (Explorer Thumbs.db, desktop.ini)."""
    from vitprobe.reproduce import foreign_results

    root = tmp_path / "small"
    (root / "runs" / "a").mkdir(parents=True)
    (root / "runs" / "a" / "run.json").write_text("{}")
    for folder in (root, root / "runs", root / "runs" / "a"):
        for name in (".DS_Store", "Thumbs.db", "desktop.ini"):
            (folder / name).write_bytes(b"x")
    assert foreign_results(root) == []
    (root / "runs" / "notes.txt").write_text("mine")
    assert foreign_results(root) == ["runs/notes.txt"]


def test_foreign_files_and_repeated_recipes_are_refused_before_work(tmp_path: Path) -> None:
    from vitprobe.errors import ConfigError

    recipe = _small_recipe(tmp_path)
    out = tmp_path / "out"
    (out / "small").mkdir(parents=True)
    (out / "small" / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match=r"small: holds notes.txt, which reproduce did not write"):
        reproduce([str(recipe)], out, progress=False)
    assert sorted(p.name for p in (out / "small").iterdir()) == ["notes.txt"]
    later = tmp_path / "later.yaml"  # a later recipe's folder is checked before the first recipe runs
    later.write_text(json.dumps({**json.loads(recipe.read_text()), "name": "later"}))
    (out / "small" / "notes.txt").rename(tmp_path / "notes.txt")
    (out / "later").mkdir()
    (out / "later" / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match=r"later: holds notes.txt, which reproduce did not write"):
        reproduce([str(recipe), str(later)], out, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["later", "small"] and not any((out / "small").iterdir())
    with pytest.raises(ConfigError, match="recipes named small more than once"):
        reproduce([str(recipe), str(recipe)], tmp_path / "other", progress=False)
    with pytest.raises(ConfigError, match="parameters given for fourier, which no recipe runs"):
        reproduce([str(recipe)], tmp_path / "other", params={"fourier": {"layers": [1]}}, progress=False)
    assert not (tmp_path / "other").exists()


@pytest.mark.parametrize("train, message", [
    ({"data": "synthetic:256x"}, r"small.yaml: model 'a': .*synthetic:256x"),
    ({"data": "synthetic:64", "batch_size": 128}, r"small.yaml: model 'a': dataset 'synthetic:64' has 64 images, "
                                                  r"fewer than one global batch of 128"),
])
def test_training_data_is_checked_before_any_model_trains(tmp_path: Path, train: dict, message: str) -> None:
    from vitprobe.errors import ConfigError

    recipe = json.loads(_small_recipe(tmp_path).read_text())
    recipe["models"] = {"b": {"train": {"method": "mae", "preset": "tiny", "epochs": 1, "data": "synthetic:32",
                                        "batch_size": 16}},
                        "a": {"train": {"method": "mae", "preset": "tiny", "epochs": 1, **train}}}
    path = tmp_path / "small.yaml"
    path.write_text(json.dumps(recipe))
    with pytest.raises(ConfigError, match=message):
        reproduce([str(path)], tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / "small" / "models").exists()  # b did not train first


def test_a_finished_model_is_reused_without_its_training_data(tmp_path: Path) -> None:
    from PIL import Image

    images = tmp_path / "imgs"
    for i in range(16):
        (images / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (32, 32), (16 * i, 0, 0)).save(images / f"c{i % 2}" / f"{i}.png")
    recipe = json.loads(_small_recipe(tmp_path).read_text())
    recipe["models"] = {"a": {"train": {"method": "mae", "preset": "tiny", "epochs": 1,
                                        "data": f"folder:{images}", "batch_size": 8}}}
    path = tmp_path / "small.yaml"
    path.write_text(json.dumps(recipe))
    reproduce([str(path)], tmp_path / "out", progress=False)
    models = tmp_path / "out" / "small" / "models"
    trained = {p: p.read_bytes() for p in models.rglob("*") if p.is_file()}
    assert any(p.name == "final.safetensors" for p in trained)
    images.rename(tmp_path / "moved")
    reproduce([str(path)], tmp_path / "out", progress=False)  # reuses the model: no need for its data
    assert {p: p.read_bytes() for p in models.rglob("*") if p.is_file()} == trained


class FakeTraining:
    """``prepare(epochs, key)``: prepare_checkpoints of a one-model recipe (MAE, tiny preset)
    whose training is faked: each call of ``train`` is recorded in ``calls`` as (epochs, resume),
    writes a partial checkpoint (unless ``stop_before_checkpoint``), stops there on a fresh
    2-epoch run, and otherwise writes ``final.safetensors`` saying its epochs."""

    def __init__(self, tmp_path: Path, monkeypatch) -> None:
        import vitprobe.train

        self.root, self.calls, self.stop_before_checkpoint = tmp_path, [], False
        monkeypatch.setattr(vitprobe.train, "train", self.train)

    def train(self, config, resume: bool, progress: bool) -> str:
        self.calls.append((config.epochs, resume))
        if self.stop_before_checkpoint:
            raise KeyboardInterrupt
        (Path(config.out) / "checkpoint.safetensors").write_text("partial")
        if config.epochs == 2 and not resume:
            raise KeyboardInterrupt
        (Path(config.out) / "final.safetensors").write_text(f"epochs {config.epochs}")
        return str(Path(config.out) / "final.safetensors")

    def prepare(self, epochs: int = 1, key: str = "m", hparams: dict | None = None, progress: bool = True,
                **options) -> Path:
        from vitprobe.recipes import ModelEntry
        from vitprobe.reproduce import prepare_checkpoints

        entry = ModelEntry(key=key, label="M", train={"method": "mae", "preset": "tiny", "epochs": epochs,
                                                      "data": "synthetic:16", "batch_size": 8, "hparams": hparams or {}})
        recipe = Recipe(name="r", title="", paper="", path=self.root / "r.yaml", data="synthetic:16", batch_size=8,
                        models=[entry], analyses=[], params={}, claims=[], figures=[])
        return prepare_checkpoints(recipe, self.root / "out", progress=progress, **options)[key]


@pytest.fixture
def faked(tmp_path: Path, monkeypatch) -> FakeTraining:
    return FakeTraining(tmp_path, monkeypatch)


def test_a_retrain_keeps_the_earlier_model_until_the_new_one_is_finished(tmp_path: Path, faked, capsys) -> None:
    """A changed training config retrains; the finished model of the old config is moved aside,
    not deleted, until the new training finishes: an interrupted retrain loses nothing, a rerun
    resumes it, and going back to the old config reuses the kept model."""
    prepare, calls = faked.prepare, faked.calls
    folder, kept = tmp_path / "out" / "models" / "m", tmp_path / "out" / "models" / ".m.replaced"
    assert prepare(1).read_text() == "epochs 1"
    with pytest.raises(KeyboardInterrupt):
        prepare(2)  # the retrain is stopped part-way
    assert (f"(its training config or objective changed since {folder} was trained: epochs 1 -> 2, "
            f"hyper-parameter warmup_epochs 0 -> 1; "
            f"the earlier model is kept in {kept} until the new one is finished)") in capsys.readouterr().out
    assert (kept / "final.safetensors").read_text() == "epochs 1" and not (folder / "final.safetensors").exists()
    assert prepare(1).read_text() == "epochs 1"  # back to the old config: the kept model, not a retrain
    assert not kept.exists() and calls == [(1, False), (2, False)]
    with pytest.raises(KeyboardInterrupt):
        prepare(2)
    capsys.readouterr()
    assert prepare(2).read_text() == "epochs 2"  # the rerun resumes the retrain, then drops the old model
    assert calls[-1] == (2, True) and not kept.exists()
    assert f"m: resuming mae for 2 epochs on synthetic:16 (its training config or objective changed since " \
           f"{folder} was trained: epochs 1 -> 2, hyper-parameter warmup_epochs 0 -> 1; the earlier model is " \
           f"kept in {kept}" in capsys.readouterr().out
    with pytest.raises(KeyboardInterrupt):
        prepare(2, key="n")  # stopped before any model of "n" was finished
    assert prepare(3, key="n").read_text() == "epochs 3"
    assert "was started: epochs 2 -> 3; the unfinished run there is started afresh)" in capsys.readouterr().out


def test_what_decides_reuse(faked, monkeypatch, capsys) -> None:
    """A finished model is reused across --num-workers; it is retrained when the objective's
    revision, a preset value in force or the preset's encoder changed, or its file is gone."""
    from dataclasses import replace

    from vitprobe.train import config as train_config
    from vitprobe.train.objectives import objective_class

    prepare, calls = faked.prepare, faked.calls
    prepare(num_workers=0)
    prepare(num_workers=2)
    prepare(hparams={"mask_ratio": objective_class("mae").defaults["mask_ratio"]})  # a default written out
    assert calls == [(1, False)]
    with pytest.warns(VitprobeWarning, match=r"^m: retraining \(its training config .*: hyper-parameter "
                                             r"mask_ratio 0.75 -> 0.5; the earlier model is kept in"):
        prepare(hparams={"mask_ratio": 0.5}, progress=False)  # said even when quiet
    prepare()
    assert len(calls) == 3
    mae = objective_class("mae")
    monkeypatch.setattr(mae, "revision", mae.revision + 1)
    prepare()
    assert len(calls) == 4 and "the objective's revision" in capsys.readouterr().out
    tiny = train_config.PRESET_HPARAMS["tiny"]
    monkeypatch.setitem(tiny, "mae", {**tiny["mae"], "decoder_depth": 1})
    prepare()
    assert len(calls) == 5 and "hyper-parameter decoder_depth 2 -> 1" in capsys.readouterr().out
    monkeypatch.setitem(train_config.PRESETS, "tiny", replace(train_config.PRESETS["tiny"], depth=3))
    prepare()
    assert len(calls) == 6 and "encoder depth 4 -> 3" in capsys.readouterr().out
    (faked.root / "out" / "models" / "m" / "final.safetensors").unlink()
    assert prepare().read_text() == "epochs 1" and len(calls) == 7
    assert "changed since" not in capsys.readouterr().out  # the same config: its model was only missing


def test_a_run_stopped_before_its_first_checkpoint_starts_afresh(faked) -> None:
    faked.stop_before_checkpoint = True
    with pytest.raises(KeyboardInterrupt):
        faked.prepare()
    faked.stop_before_checkpoint = False
    faked.prepare()
    assert faked.calls == [(1, False), (1, False)]  # nothing to resume from


@pytest.mark.parametrize("text", ["", "{", "[]", "null"])
def test_a_damaged_started_record_is_started_afresh(faked, capsys, text: str) -> None:
    folder = faked.root / "out" / "models" / "m"
    folder.mkdir(parents=True)
    (folder / "started.json").write_text(text)
    assert faked.prepare().read_text() == "epochs 1"
    assert f"since {folder} was started; the unfinished run there is started afresh)" in capsys.readouterr().out


def test_an_interrupted_reproduce_says_a_rerun_continues(monkeypatch, capsys) -> None:
    import vitprobe.reproduce as reproduce_module
    from vitprobe.cli import main

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(reproduce_module, "reproduce", interrupted)
    assert main(["reproduce", "cl_vs_mim"]) == 130
    assert capsys.readouterr().err == ("vitprobe: interrupted; the same command again reuses the models trained "
                                       "and resumes the one in training\n")


def test_a_model_whose_training_warned_of_a_collapse_is_flagged_in_the_report(tmp_path: Path) -> None:
    """The warning a vitprobe checkpoint carries reaches the load (a warning), each result's
    protocol, the recipe's report and the analysis pages (the run's and the comparison's),
    beside that model alone (its random copy has none)."""
    from vitprobe.errors import VitprobeWarning
    from vitprobe.models.architecture import ArchSpec, build_model
    from vitprobe.models.own_format import save_encoder

    said = "epoch 0: contrastive collapse (embedding std 0.001, healthy about 0.177)"
    arch = ArchSpec(patch_size=8, embed_dim=32, depth=2, num_heads=2, img_size=32)
    save_encoder(tmp_path / "enc.safetensors", build_model(arch), arch, {"objective": "mocov3", "warnings": [said]})
    with pytest.warns(VitprobeWarning, match="its training warned of a collapse: epoch 0: contrastive collapse"):
        [report] = reproduce([str(_small_recipe(tmp_path))], tmp_path / "out", progress=False)
    page = report.read_text(encoding="utf-8")
    assert page.count("training warned") == 1
    assert page.index("<li><b>a</b>") < page.index(f"<b>training warned</b>: {said}") < page.index("<li><b>b</b>")
    runs = tmp_path / "out" / "small" / "runs"
    assert json.loads((runs / "a" / "knn.json").read_text())["checkpoint"]["training_warnings"] == [said]
    assert "training_warnings" not in json.loads((runs / "b" / "knn.json").read_text())["checkpoint"]
    shown = f"<dt>training warned</dt><dd>{said}</dd>"  # in the checkpoint block of the analyze pages
    assert shown in (runs / "a" / "report.html").read_text(encoding="utf-8")
    assert "training warned" not in (runs / "b" / "report.html").read_text(encoding="utf-8")
    compared = (tmp_path / "out" / "small" / "figures" / "report.html").read_text(encoding="utf-8")
    assert compared.count(shown) == 1 and compared.index(shown) < compared.index("<h3>b</h3>")


def _majority_top1(which: int, n: int = 16) -> float:
    """% of synthetic:n's images in the commonest class of label ``which`` (0 shape, 1 texture)."""
    from vitprobe.data.synthetic import labels_for

    labels = [labels_for(i, 0)[which] for i in range(n)]
    return 100.0 * max(map(labels.count, labels)) / n


def test_analysis_warnings_name_their_model_and_sit_beside_the_claims_they_qualify(tmp_path: Path) -> None:
    """Two models warned alike are both named (not the first alone), in the output and in the
    report: beside the model, and under the claim whose analysis warned, for the models that
    claim compares (not c)."""
    from vitprobe.errors import VitprobeWarning

    path = _small_recipe(tmp_path, "a b c")
    recipe = json.loads(path.read_text())
    recipe["claims"] = [{"figure": "knn", "text": "a beats b", "check": {"metric": "knn_top1", "label": "shape",
                                                                        "layers": "last", "greater": "a", "than": "b"}},
                        {"figure": "attention_distance", "text": "b attends farther",
                         "check": {"metric": "attention_distance_px", "greater": "b", "than": "a"}},
                        {"figure": "knn", "text": "a beats b on texture",
                         "check": {"metric": "knn_top1", "label": ["texture", "class"], "layers": "last",
                                   "greater": "a", "than": "b"}}]
    path.write_text(json.dumps(recipe))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        [report] = reproduce([str(path)], tmp_path / "out", progress=False)
    said = [str(w.message) for w in caught if issubclass(w.category, VitprobeWarning)]
    for label in ("a", "b"):
        assert any(s.startswith(f"{label}: knn on label 'shape': only") for s in said), said
    page = report.read_text(encoding="utf-8")
    knn_claim, distance_claim, texture_claim = page.split("<div class='claim'>")[1:4]
    assert "<i>Read with:</i> a: knn on label" in knn_claim and "<i>Read with:</i> b: knn on label" in knn_claim
    assert "Read with" not in distance_claim and "<i>Read with:</i> c:" not in knn_claim
    for claim, label, other in ((knn_claim, "shape", "texture"), (texture_claim, "texture", "shape")):
        assert f"knn on label &#x27;{label}&#x27;" in claim and f"&#x27;{other}&#x27;" not in claim
    assert page.count("<b>analysis warned</b>: knn on label") == 3 * knn_claim.count("<i>Read with:</i>") >= 6
    saved = json.loads((tmp_path / "out" / "small" / "runs" / "b" / "run.json").read_text())
    assert any(w.startswith("knn on label 'shape'") for w in saved["meta"]["analysis_warnings"])
    verdicts = json.loads((report.parent / "verdicts.json").read_text(encoding="utf-8"))
    knn = ("dataset synthetic:16 (n=16) · image size 32 · pooling cls · no final norm · k 3 · T 0.07 · "
           "heldout fraction 0.2 · held out 1 of 16 images · majority class top1 "
           f"shape: {_majority_top1(0):.3g}, texture: {_majority_top1(1):.3g}")  # each verdict carries its protocol
    assert [v["protocol"] for v in verdicts] == [knn, "dataset synthetic:16 (n=16) · image size 32", knn]


def test_models_read_at_different_image_sizes_are_warned_of_and_noted_under_their_claims(tmp_path: Path) -> None:
    """Pixel distances of a 32 px and a 48 px model do not line up: reproduce says so, as
    analyze and compare do, and the report sets it under the claim that compares them."""
    from vitprobe.errors import VitprobeWarning
    from vitprobe.models.architecture import ArchSpec, build_model
    from vitprobe.models.own_format import save_encoder

    for name, size in (("small", 32), ("large", 48)):
        arch = ArchSpec(patch_size=8, embed_dim=32, depth=2, num_heads=2, img_size=size)
        save_encoder(tmp_path / f"{name}.safetensors", build_model(arch), arch, {"objective": "random_init"})
    recipe = {"name": "sizes", "data": "synthetic:16", "batch_size": 8, "analyses": ["attention_distance"],
              "models": {"a": {"checkpoint": "small.safetensors"}, "b": {"checkpoint": "large.safetensors"}},
              "claims": [{"figure": "attention_distance", "text": "b attends farther",
                          "check": {"metric": "attention_distance_px", "greater": "b", "than": "a"}}]}
    path = tmp_path / "sizes.yaml"
    path.write_text(json.dumps(recipe))
    said = r"attention_distance was run with different settings \(image_size 32 \(a\) \| 48 \(b\)\)"
    with pytest.warns(VitprobeWarning, match=rf"^sizes: {said}"):
        [report] = reproduce([str(path)], tmp_path / "out", progress=False)
    page = report.read_text(encoding="utf-8")
    claim = page.split("<div class='claim'>")[1]
    assert re.search(rf"<i>Read with:</i> {said}", claim) and re.search(rf"<b>measured unalike</b>: {said}", page)
    # the even-attention distances alone differ by 16 px x 1.5: pixels of two grids decide nothing
    [verdict] = json.loads((report.parent / "verdicts.json").read_text(encoding="utf-8"))
    assert verdict["agrees"] is None
    assert verdict["protocol"] == "dataset synthetic:16 (n=16) · image size 48 (b) | 32 (a)"
    assert verdict["detail"].endswith("; undecided: the models were analysed on different patch grids (48 px, patch 8 "
                                      "(b) | 32 px, patch 8 (a)), on which attention_distance's numbers do not line "
                                      "up; compare models of one image size and patch size")


def test_a_claim_on_patches_compares_models_of_one_grid_and_a_claim_on_pixels_of_one_image_and_patch_size(
        tmp_path: Path) -> None:
    """32 px in patches of 8 and 16 px in patches of 4 are both 4 x 4 patches: NMI, an entropy
    over them, is decided across the two, attention distance in pixels is not; a 6 x 6 grid
    leaves NMI undecided too, its detail naming each model's grid."""
    from vitprobe.errors import VitprobeWarning
    from vitprobe.models.architecture import ArchSpec, build_model
    from vitprobe.models.own_format import save_encoder

    for name, size, patch in (("a", 32, 8), ("b", 16, 4), ("c", 48, 8)):
        arch = ArchSpec(patch_size=patch, embed_dim=32, depth=2, num_heads=2, img_size=size)
        save_encoder(tmp_path / f"{name}.safetensors", build_model(arch), arch, {"objective": "random_init"})
    claims = [("attention_nmi", "nmi", "a", "b"), ("attention_nmi", "nmi", "c", "a"),
              ("attention_distance", "attention_distance_px", "b", "a")]
    recipe = {"name": "grids", "data": "synthetic:16", "batch_size": 8,
              "analyses": ["attention_nmi", "attention_distance"],
              "models": {k: {"checkpoint": f"{k}.safetensors"} for k in "abc"},
              "claims": [{"figure": figure, "text": f"{one} over {other}",
                          "check": {"metric": metric, "greater": one, "than": other}}
                         for figure, metric, one, other in claims]}
    path = tmp_path / "grids.yaml"
    path.write_text(json.dumps(recipe))
    with pytest.warns(VitprobeWarning, match="run with different settings"):
        [report] = reproduce([str(path)], tmp_path / "out", progress=False)
    same_grid, other_grid, pixels = json.loads((report.parent / "verdicts.json").read_text(encoding="utf-8"))
    assert same_grid["detail"].startswith("a ") and "grid" not in same_grid["detail"]  # decided on the numbers
    assert other_grid["agrees"] is None and other_grid["detail"].endswith(
        "; undecided: the models were analysed on different patch grids (6x6 patches (c) | 4x4 patches (a)), on "
        "which attention_nmi's numbers do not line up; compare models of one patch grid (image size / patch size)")
    assert pixels["agrees"] is None and pixels["detail"].endswith(
        "different patch grids (16 px, patch 4 (b) | 32 px, patch 8 (a)), on which attention_distance's numbers do "
        "not line up; compare models of one image size and patch size")


def test_num_heads_gives_a_checkpoint_the_head_count_its_file_does_not(tmp_path: Path, capsys) -> None:
    """A bare timm state dict of width 32 holds no head count (guessed: 1 head, warned of with the
    option that fixes it); reproduce --num-heads KEY=N gives it, as a recipe model's num_heads does."""
    import timm

    from vitprobe.cli import main

    torch.save(timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, embed_dim=32, depth=2,
                                 num_heads=2, num_classes=0).state_dict(), tmp_path / "bare.pth")
    recipe = {"name": "heads", "data": "synthetic:16", "batch_size": 8, "analyses": ["attention_nmi"],
              "models": {"a": {"checkpoint": "bare.pth"}, "b": {"random_like": "a"}}}
    path = tmp_path / "heads.yaml"
    path.write_text(json.dumps(recipe))
    assert main(["reproduce", str(path), "--out", str(tmp_path / "guessed"), "--no-progress"]) == 0
    assert re.search(r"guessed: width 32 // 64 .*pass --num-heads \(reproduce: --num-heads KEY=N", capsys.readouterr().err)
    assert main(["reproduce", str(path), "--out", str(tmp_path / "given"), "--no-progress", "--num-heads", "a=2"]) == 0
    assert "head count" not in capsys.readouterr().err
    saved = json.loads((tmp_path / "given" / "heads" / "runs" / "a" / "attention_nmi.json").read_text())
    assert saved["checkpoint"]["arch"]["num_heads"] == 2
    assert "--num-heads a=2" in (tmp_path / "given" / "heads" / "report.html").read_text(encoding="utf-8")
    capsys.readouterr()
    assert main(["reproduce", str(path), "--out", str(tmp_path / "bad"), "--num-heads", "z=2"]) == 2
    assert "--num-heads z=...: no model 'z'" in capsys.readouterr().err


def test_an_analysis_output_is_no_reproduce_out(tmp_path: Path) -> None:
    out = tmp_path / "analysed"
    out.mkdir()
    (out / "run.json").write_text("{}")
    with pytest.raises(OutputExistsError, match=rf"^{re.escape(str(out))} holds an analysis \(run.json or runs.json\), "
                                                "which the recipes' folders would mix with; choose another --out$"):
        reproduce([str(_small_recipe(tmp_path))], out, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["run.json"]


def test_a_failing_analysis_still_says_the_warnings_before_its_error(tmp_path: Path, monkeypatch) -> None:
    import vitprobe.analysis
    from vitprobe.errors import ConfigError, VitprobeWarning, warn_user

    def warns_then_fails(*args, **kwargs):
        warn_user("attention_distance: every head attends evenly")
        raise ConfigError("the data ran out")

    monkeypatch.setattr(vitprobe.analysis, "analyze", warns_then_fails)
    with pytest.warns(VitprobeWarning, match=r"^a: attention_distance: every head attends evenly$"):
        with pytest.raises(ConfigError, match=r"model 'a': the data ran out"):
            reproduce([str(_small_recipe(tmp_path))], tmp_path / "out", progress=False)
    assert sorted(p.name for p in (tmp_path / "out" / "small").iterdir()) == ["models"]  # kept for reuse


def test_a_warning_bears_on_the_claims_of_its_analysis_and_label() -> None:
    from vitprobe.reproduce import _bears_on

    warned = "knn on label 'texture': only 3 held-out images"
    assert _bears_on(warned, "knn", "texture") and not _bears_on(warned, "knn", "shape")
    assert not _bears_on(warned, "linear_probe", "texture")
    assert _bears_on("linear_probe: 2 of 4 fits stopped at max_iter", "sweep_linear_probe", "shape")
    assert _bears_on("attention_jaccard: no image has an object", "attention_jaccard", None)


def test_the_report_and_verdicts_say_what_the_caller_changed_in_the_recipe(tmp_path: Path) -> None:
    path = _small_recipe(tmp_path)
    recipe = json.loads(path.read_text())
    recipe["claims"] = [{"figure": "attention_distance", "text": "b attends farther",
                         "check": {"metric": "attention_distance_px", "greater": "b", "than": "a"}}]
    path.write_text(json.dumps(recipe))
    as_written = reproduce([str(path)], tmp_path / "plain", progress=False)[0]
    [verdict] = json.loads((as_written.parent / "verdicts.json").read_text())
    assert verdict["data"] == "synthetic:16" and verdict["changes"] == []
    assert verdict["figure"] == "attention_distance" and verdict["claim"] == "b attends farther"
    page = as_written.read_text(encoding="utf-8")
    assert "<p>the recipe as written.</p>" in page
    for figure in ("attention_distance", "knn"):  # beside its claim, or after the claims: once
        assert page.count(f"<img src='figures/{figure}.png'") == 1
    assert page.index("<img src='figures/attention_distance.png'") < page.index("<img src='figures/knn.png'")
    changed = reproduce([str(path)], tmp_path / "changed", progress=False, params={"knn": {"k": 2}}, seed=3,
                        data="synthetic:24")[0]
    [verdict] = json.loads((changed.parent / "verdicts.json").read_text())
    assert verdict["data"] == "synthetic:24"
    assert verdict["changes"] == ["--data synthetic:24", "--seed 3", "--param knn.k=2"]
    assert "<p>run with --data synthetic:24, --seed 3, --param knn.k=2.</p>" in changed.read_text(encoding="utf-8")


def test_a_model_given_for_several_recipes_replaces_it_where_a_recipe_has_that_model(tmp_path: Path) -> None:
    """--model KEY=PATH with several recipes used to fail on the first recipe without KEY."""
    from vitprobe.errors import ConfigError

    first = _small_recipe(tmp_path, "a b")
    second = tmp_path / "other.yaml"
    second.write_text(json.dumps({**json.loads(first.read_text()), "name": "other",
                                  "models": {"a": {"checkpoint": "enc.safetensors"}, "c": {"random_like": "a"}}}))
    given = {"c": str(tmp_path / "enc.safetensors")}
    with pytest.raises(ConfigError, match=r"--model d=\.\.\.: no recipe has a model 'd'; models: a, b, c"):
        reproduce([str(first), str(second)], tmp_path / "out", progress=False, checkpoints={"d": "x.pt"})
    with pytest.raises(ConfigError, match=r"--num-heads z=\.\.\.: no recipe has a model 'z'; models: a, b, c"):
        reproduce([str(first), str(second)], tmp_path / "out", progress=False, num_heads={"z": 2})
    with pytest.raises(ConfigError, match=r"no model 'c'"):  # one recipe: a key it lacks is a typo
        reproduce([str(first)], tmp_path / "out", progress=False, checkpoints=given)
    reports = reproduce([str(first), str(second)], tmp_path / "out", progress=False, checkpoints=given)
    index = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert "<li><a href='small/report.html'>small</a></li><li><a href='other/report.html'>other</a></li>" in index
    pages = [r.read_text(encoding="utf-8") for r in reports]
    assert "the recipe as written" in pages[0] and f"run with --model c={given['c']}." in pages[1]
    other = json.loads((tmp_path / "out" / "other" / "runs" / "c" / "run.json").read_text())
    assert other["checkpoint"]["path"] == str(Path(given["c"]).resolve())  # the file, not a random copy


def test_an_analysis_the_data_cannot_feed_is_named_in_the_report(tmp_path: Path) -> None:
    """`analyses: all` on digits skips attention_jaccard: only the console said so."""
    path = _small_recipe(tmp_path, "a b")
    recipe = json.loads(path.read_text())
    path.write_text(json.dumps({**recipe, "analyses": "all", "params": {},
                                "claims": [{"figure": "attention_jaccard", "text": "a finds objects",
                                            "check": {"metric": "jaccard_best_head", "greater": "a", "than": "b"}}]}))
    with pytest.warns(UserWarning, match="skipping attention_jaccard"):
        [report] = reproduce([str(path)], tmp_path / "out", data="digits", progress=False)
    page = report.read_text(encoding="utf-8")
    assert "<p><b>not run</b>: attention_jaccard: it needs foreground masks, which digits lacks; use a dataset with" in page
    claim = page.split("<div class='claim'>")[1]  # its figure was not drawn: no broken image
    assert "<p>(not drawn: its analysis did not run on this data)</p>" in claim and "<img" not in claim


def test_a_model_kept_aside_for_its_config_is_reused_without_its_training_data(tmp_path: Path) -> None:
    """A config that goes back to the model kept in models/.<key>.replaced/ reuses that model:
    its training data, gone since, is not checked (as for a finished model in place)."""
    from vitprobe.errors import ConfigError
    from vitprobe.recipes import ModelEntry
    from vitprobe.reproduce import _check_training_data, _training

    entry = ModelEntry(key="m", label="M", train={"method": "mae", "preset": "tiny", "epochs": 1,
                                                  "data": f"folder:{tmp_path / 'gone'}", "batch_size": 8})
    recipe = Recipe(name="r", title="", paper="", path=tmp_path / "r.yaml", data="synthetic:16", batch_size=8,
                    models=[entry], analyses=[], params={}, claims=[], figures=[])
    with pytest.raises(ConfigError, match=r"r.yaml: model 'm': .*gone"):
        _check_training_data(recipe, tmp_path / "out", "cpu", 0)  # nothing to reuse: the data is needed
    kept = tmp_path / "out" / "r" / "models" / ".m.replaced"
    kept.mkdir(parents=True)
    (kept / "final.safetensors").write_text("weights")
    _, wanted, reusable = _training(entry, kept.parent / "m", "cpu", 0)
    assert not reusable
    (kept / "finished.json").write_text(wanted, encoding="utf-8")
    assert _training(entry, kept.parent / "m", "cpu", 0)[2]
    _check_training_data(recipe, tmp_path / "out", "cpu", 0)  # reused: no data needed
    (kept / "finished.json").write_text(wanted.replace('"epochs": 1', '"epochs": 2'), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"r.yaml: model 'm': .*gone"):
        _check_training_data(recipe, tmp_path / "out", "cpu", 0)  # kept for another config: retrained


def test_only_claims_on_a_grid_bound_metric_are_left_undecided_across_grids() -> None:
    """k-NN accuracy is no measure of the patch grid: a claim on it is decided across models of
    other image sizes, where one on attention distance (pixels) is not; a peak_inside claim
    compares every model, so one model on another grid leaves it undecided. The grid is the image
    size the analysis read (a model of dynamic image size reads the data's), not the file's."""
    from types import SimpleNamespace

    from vitprobe.claims import Verdict
    from vitprobe.recipes import Claim
    from vitprobe.reproduce import _unless_on_other_grids

    class Analysed(dict):  # a Run: its checkpoint's grid and, where given, the size NMI was read at
        def __init__(self, size: int, nmi_read_at: int | None = None) -> None:
            super().__init__()
            self.checkpoint = {"arch": {"img_size": size, "patch_size": 8}}
            if nmi_read_at is not None:
                self["attention_nmi"] = SimpleNamespace(protocol={"image_size": nmi_read_at})

    runs = {"a": Analysed(32, 32), "b": Analysed(48, 48), "c": Analysed(32, 32), "d": Analysed(16, 32)}
    recipe = Recipe(name="r", title="", paper="", path=Path("r.yaml"), data="synthetic:16", batch_size=8, models=[],
                    analyses=["knn", "attention_distance", "attention_nmi"], params={}, claims=[], figures=[])
    labels = {"a": "A", "b": "B", "c": "C", "d": "D"}
    decided = Verdict(True, "A 90 vs B 80")

    def judged(metric: str, **sides: object) -> Verdict:
        return _unless_on_other_grids(decided, Claim("f", "t", {"metric": metric, **sides}), recipe, runs, labels)

    assert judged("knn_top1", greater="a", than="b") == decided
    assert judged("attention_distance_px", greater="a", than="c") == decided  # one grid
    pixels = judged("attention_distance_px", greater="a", than="b")
    assert pixels.agrees is None and pixels.detail.startswith("A 90 vs B 80; undecided: the models were analysed "
                                                              "on different patch grids (32 px, patch 8 (A) | 48 px")
    assert judged("attention_distance_px", peak_inside=True).agrees is None  # a, b, c and d
    assert judged("knn_top1", peak_inside=True) == decided
    assert judged("nmi", greater="d", than="a") == decided  # d's 16 px file read at the data's 32 px: 4x4 patches
    assert "(4x4 patches (A) | 6x6 patches (B))" in judged("nmi", greater="a", than="b").detail


def test_a_claim_on_the_iou_of_models_that_all_spread_their_masks_evenly_is_undecided() -> None:
    """Every head's mask keeping about keep_mass of the patches measures the mask's share of the
    image, not the object: an IoU claim between two such models is undecided, saying why; one
    model that attends decides it (the even one is its baseline), and mask_area itself, or a
    verdict already undecided, is left as it is."""
    from types import SimpleNamespace

    from vitprobe.claims import Verdict
    from vitprobe.recipes import Claim
    from vitprobe.reproduce import _unless_uninformative

    runs = {k: {"attention_jaccard": SimpleNamespace(protocol={"even_masks": even})}
            for k, even in (("a", True), ("b", True), ("c", False))}
    recipe = Recipe(name="r", title="", paper="", path=Path("r.yaml"), data="synthetic:16", batch_size=8, models=[],
                    analyses=["attention_jaccard"], params={}, claims=[], figures=[])
    labels = {"a": "A", "b": "B", "c": "C"}
    decided = Verdict(True, "A 0.42 vs B 0.38")

    def judged(metric: str, verdict: Verdict = decided, **sides: object) -> Verdict:
        return _unless_uninformative(verdict, Claim("f", "t", {"metric": metric, **sides}), recipe, runs, labels)

    even = judged("jaccard_best_head", greater="a", than="b")
    assert even.agrees is None and even.detail.startswith("A 0.42 vs B 0.38; undecided: every model compared has "
                                                          "even_masks (A, B): every head's mask keeps about keep_mass")
    assert judged("jaccard_union", greater="c", than="a") == decided
    assert judged("jaccard", peak_inside=True) == decided  # c attends
    assert judged("mask_area", greater="a", than="b") == decided
    assert judged("jaccard", Verdict(None, "too close"), greater="a", than="b") == Verdict(None, "too close")


def test_the_recipes_own_figures_are_not_foreign_results(tmp_path: Path) -> None:
    """A rerun replaces the figures reproduce draws beyond the comparison (sweeps,
    reconstructions); any other file among the figures is the user's, and is refused."""
    from vitprobe.reproduce import foreign_results

    figures = tmp_path / "study" / "figures"
    figures.mkdir(parents=True)
    (figures / "runs.json").write_text("[]")
    for name in ("knn.png", "knn.csv", "report.html", "reconstructions_gmml.png", "reconstructions_gmml.svg",
                 "sweep_knn.png", "sweep_linear_probe.svg"):
        (figures / name).write_bytes(b"x")
    assert foreign_results(tmp_path / "study") == []
    for name in ("sweep_fourier.png", "reconstructions_.png", "notes.png"):
        (figures / name).write_bytes(b"x")
    assert foreign_results(tmp_path / "study") == ["figures/notes.png", "figures/reconstructions_.png",
                                                   "figures/sweep_fourier.png"]


def test_every_reproduce_option_reaches_the_run(tmp_path: Path, monkeypatch) -> None:
    import vitprobe.reproduce as reproduce_module
    from vitprobe.cli import main

    seen: list[dict] = []

    def fake_reproduce(recipes, out, **options):
        seen.append({"recipes": recipes, "out": out, **options})
        return []

    monkeypatch.setattr(reproduce_module, "reproduce", fake_reproduce)
    out = str(tmp_path / "o")
    assert main(["reproduce", "cl_vs_mim", "--out", out, "--quick", "--data", "digits", "--device", "auto",
                 "--num-workers", "2", "--param", "knn.k=5", "--num-heads", "mocov3=6", "--seed", "4",
                 "--model", "simmim=s.pth", "--no-progress"]) == 0
    assert seen.pop() == {"recipes": ["cl_vs_mim"], "out": out, "quick": True, "data": "digits",
                          "checkpoints": {"simmim": "s.pth"}, "device": "auto", "num_workers": 2, "progress": False,
                          "params": {"knn": {"k": 5}}, "seed": 4, "num_heads": {"mocov3": 6}}
    assert main(["reproduce", "--quick", "--out", out]) == 0  # --quick alone: the papers' recipes
    assert seen.pop()["recipes"] == list(RECIPES)


def test_a_sweep_names_its_models_by_lambda_and_draws_each_value_beside_its_own_run(monkeypatch) -> None:
    import vitprobe.plots.sweep
    from vitprobe.reproduce import _extra_figure_makers

    recipe = load_recipe("hybrid_sweep", quick=True)
    assert [(m.key, m.label, m.train["lam"]) for m in recipe.models] == [
        ("lam_0", "lambda = 0", 0.0), ("lam_0.25", "lambda = 0.25", 0.25), ("lam_0.5", "lambda = 0.5", 0.5),
        ("lam_0.75", "lambda = 0.75", 0.75), ("lam_1", "lambda = 1", 1.0)]
    drawn = []
    monkeypatch.setattr(vitprobe.plots.sweep, "draw_sweep", lambda *args: drawn.append(args))
    runs = {m.key: {name: f"{name} of {m.key}" for name in recipe.analyses} for m in recipe.models}
    makers = _extra_figure_makers(recipe, runs, {}, "cpu")
    assert sorted(makers) == sorted(recipe.extra_figures) and "sweep_knn" in makers
    makers["sweep_knn"]()
    assert drawn == [([0.0, 0.25, 0.5, 0.75, 1.0], [f"knn of {m.key}" for m in recipe.models], "lambda")]


def test_a_claims_protocol_names_what_layer_0_holds_only_where_the_claim_reads_layer_0() -> None:
    import pandas as pd

    from vitprobe.reproduce import _claim_protocol
    from vitprobe.results import Result

    table = pd.DataFrame({"metric": ["token_cosine"] * 3, "layer": [0, 1, 2], "value": [0.1, 0.2, 0.3]})
    protocol = {"analysis": "token_similarity", "dataset": "d"}
    runs = {"vit": {"token_similarity": Result("token_similarity", table, protocol)},
            "simmim": {"token_similarity": Result("token_similarity", table,
                                                  {**protocol, "layer_0": "patch embedding, no positions"})}}
    labels = {"vit": "ViT", "simmim": "SimMIM"}
    check = {"metric": "token_cosine", "greater": "vit", "than": "simmim"}
    assert _claim_protocol({**check, "layers": "last"}, runs, labels) == "dataset d"
    assert _claim_protocol({**check, "layers": [0, 1]}, runs, labels) == \
        "dataset d · layer 0 patch embedding, no positions (SimMIM)"
    assert "layer 0 patch embedding" in _claim_protocol(check, runs, labels)  # every layer: 0 among them

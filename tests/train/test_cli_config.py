"""``vitprobe train --config FILE`` and ``--resume --out DIR`` alone: where options come from."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_resume import assert_same_run, stop_after_first_save  # noqa: E402

from vitprobe.cli import main  # noqa: E402
from vitprobe.errors import ConfigError  # noqa: E402

SMALL = ["--epochs", "2", "--batch-size", "8", "--no-progress"]


def saved_config(out: Path) -> dict:
    return json.loads((out / "config.json").read_text(encoding="utf-8"))


def test_a_config_file_trains_as_its_options_given_on_the_command_line(tmp_path, capsys):
    config = tmp_path / "simmim.yaml"
    config.write_text("method: simmim\ndata: synthetic:16\nepochs: 3\nhparams:\n  clip_grad: 1.0\n  mask_ratio: 0.5\n")
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "file"), "--epochs", "1",
                 "--set", "mask_ratio=0.6", "--batch-size", "8", "--no-progress"]) == 0
    assert main(["train", "--method", "simmim", "--data", "synthetic:16", "--epochs", "1", "--batch-size", "8",
                 "--set", "clip_grad=1.0", "--set", "mask_ratio=0.6", "--out", str(tmp_path / "flags"),
                 "--no-progress"]) == 0
    by_file, by_flags = saved_config(tmp_path / "file"), saved_config(tmp_path / "flags")
    assert by_file["epochs"] == 1  # the command line wins over the file
    assert by_file["hparams"] == {"clip_grad": 1.0, "mask_ratio": 0.6}  # --set merged key by key
    assert {**by_file, "out": None} == {**by_flags, "out": None}
    capsys.readouterr()


def test_the_shipped_training_configs_are_valid(tmp_path):
    from vitprobe.train import TrainConfig
    from vitprobe.train.config import read_train_config

    files = sorted((Path(__file__).parents[2] / "analyses" / "train").glob("*.yaml"))
    assert files
    for file in files:
        options = read_train_config(file)
        config = TrainConfig.from_overrides({**options, "lam": 0.5} if options["method"] == "hybrid" else options)
        assert config.method in file.stem and config.preset == "tiny"


def test_numbers_in_exponent_form_are_numbers_in_a_training_config(tmp_path):
    """PyYAML's YAML 1.1 read `lr: 1e-3` as the string '1e-3' ("lr must be a number, got
    '1e-3'"); YAML 1.2 and JSON read a number, and so does vitprobe, leaving PyYAML's own
    SafeLoader as it was."""
    import yaml

    from vitprobe.train import TrainConfig
    from vitprobe.train.config import read_train_config

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("method: mae\ndata: synthetic:16\nlr: 1e-3\nhparams: {min_lr: 1.0e-6, weight_decay: 5E-2, "
                   "mask_ratio: .6e0}\nseed: 12\n")
    options = read_train_config(cfg)
    assert options["lr"] == 0.001 and options["hparams"] == {"min_lr": 1e-6, "weight_decay": 0.05, "mask_ratio": 0.6}
    assert options["seed"] == 12 and isinstance(options["seed"], int)
    assert TrainConfig.from_overrides(options).lr == 0.001
    assert yaml.safe_load("lr: 1e-3") == {"lr": "1e-3"}  # PyYAML itself unchanged


@pytest.mark.parametrize("way", ["command line", "python"])
def test_resume_with_only_the_out_folder_continues_exactly(tmp_path, monkeypatch, capsys, way):
    """``vitprobe train --resume --out DIR`` and ``train({"out": DIR}, resume=True)`` take the
    run's own options from its config.json."""
    from vitprobe.train import train

    def run(out: Path, resume: bool) -> None:
        if resume and way == "python":
            assert train({"out": str(out)}, resume=True, progress=False) == out / "final.safetensors"
            return
        argv = ["--resume", "--out", str(out), "--no-progress"] if resume else [
            "--method", "mae", "--data", "synthetic:16", "--set", "mask_ratio=0.5", "--seed", "3",
            "--out", str(out), *SMALL]
        assert main(["train", *argv]) == 0

    run(tmp_path / "full", False)
    stop_after_first_save(lambda: run(tmp_path / "split", False), monkeypatch)
    run(tmp_path / "split", True)
    assert_same_run(tmp_path / "full", tmp_path / "split")
    # options that may change on resume are taken; the others are refused with the saved value named
    capsys.readouterr()
    if way == "python":
        with pytest.raises(ConfigError, match="--batch-size was 8, now 4"):
            train({"out": str(tmp_path / "split"), "batch_size": 4}, resume=True, progress=False)
        return
    assert main(["train", "--resume", "--out", str(tmp_path / "split"), "--batch-size", "4"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--batch-size was 8, now 4" in err and "\n" not in err


@pytest.mark.parametrize("argv,content,message", [
    (["--data", "synthetic:16"], None,
     "give --method, or --config FILE with a method: key, or --resume with the --out of a run to continue"),
    (["--config", "{cfg}"], "method: mae\nlrr: 0.1\n", "{cfg}: unknown training option(s) ['lrr']; known: ['amp'"),
    (["--config", "{cfg}"], "method: mae\nmask_ratio: 0.6\n",
     "'seed']; mask_ratio is a hyper-parameter of mae: put it under hparams:"),
    (["--config", "{cfg}", "--method", "simmim"], "data: digits\nmask_ratio: 0.6\n",
     "'seed']; mask_ratio is a hyper-parameter of simmim: put it under hparams:"),
    (["--config", "{cfg}"], "data: digits\nmask_ratio: 0.6\nteacher_temp: 0.1\n",
     "mask_ratio (of gmml, mae, simmim) and teacher_temp (of dino) are hyper-parameters: put them under hparams:"),
    (["--config", "{cfg}"], "method: hybrid\nlam: 0.5\nmask_ratio: 0.6\ncrop_scale: [0.3, 1]\n",
     "; crop_scale is a hyper-parameter of both hybrid branches: put it under hparams: {{mim_hparams: {{crop_scale: "
     "...}}}} or {{cl_hparams: {{crop_scale: ...}}}}; mask_ratio is a hyper-parameter of the hybrid's MIM branch: put "
     "it under hparams: {{mim_hparams: {{mask_ratio: ...}}}}"),
    (["--config", "{cfg}"], "method: hybrid\nlam: 0.5\nhparams: {mim: mae}\nnorm_pix_loss: true\n",  # the branch given
     "; norm_pix_loss is a hyper-parameter of the hybrid's MIM branch: put it under hparams: {{mim_hparams: "
     "{{norm_pix_loss: ...}}}}"),
    (["--config", "{cfg}"], "method: mae\ndata: synthetic:16\nlr: fast\n", "{cfg}: lr must be a number, got 'fast'"),
    (["--config", "{cfg}", "--epochs", "1"], "method: mae\ndata: 5\n", "{cfg}: data must be a non-empty string, got 5"),
    (["--config", "{cfg}", "--lambda", "0.5"], "method: mae\ndata: synthetic:16\n",
     "the command line's options (over {cfg}): --lambda applies to --method hybrid only"),
    (["--resume", "--set", "bogus=1"], '{"method": "mae", "data": "synthetic:16"}',
     "the command line's options (over {out}/config.json): objective 'mae': unknown hyper-parameter(s) ['bogus']"),
    (["--config", "{cfg}"], "method: mae\nmethod: dino\n", "{cfg} (line 2): key 'method' is given twice"),
    (["--config", "{cfg}"], "method: mae\ndata: synthetic:16\nhparams: {mask_ratio: 1.5}\n",
     "{cfg}: objective 'mae': mask_ratio"),
    (["--config", "{cfg}"], "method: mae\ndata: synthetic:16\nhparams: {mask_ratoi: 0.5}\n",
     "{cfg}: objective 'mae': unknown hyper-parameter(s) ['mask_ratoi']"),
    (["--resume", "--method", "mae"], '{"method": "dino", "data": "synthetic:16", "hparams": {"out_dim": 1024}}',
     "--resume: the run in {out} trains dino, not mae; resume without --method (Python: method=) or start a new --out"),
    (["--resume", "--set", "mask_ratio=0.5"], '{"method": "mae", "data": "synthetic:16", "hparams": [1]}',
     "{out}/config.json: hparams must be a dict, got list"),  # the file's, not replaced by --set's
    (["--resume"], '{"method": "mae", "data": "synthetic:16", "grad_accum": 2}',
     "{out}/config.json: unknown training option(s) ['grad_accum']"),
    (["--config", "{cfg}"], "- method\n", "{cfg}: a training config is a YAML mapping of training options"),
    (["--config", "{tmp}/missing.yaml"], None, "{tmp}/missing.yaml: no such training config file"),
    (["--resume"], None, "--resume (Python: resume=True): {out} does not exist; point --out (out=) at the folder"),
    (["--resume"], "not json", "--resume: {out}/config.json is not valid JSON (Expecting value: line 1 column 1 (char 0)); repeat the run's"),
])
def test_a_missing_or_bad_source_of_options_is_one_line(tmp_path, capsys, argv, content, message):
    cfg, out = tmp_path / "cfg.yaml", tmp_path / "run"
    if content is not None:
        if "--resume" in argv:
            out.mkdir()
            (out / "config.json").write_text(content)
        else:
            cfg.write_text(content)
    names = {"cfg": cfg, "tmp": tmp_path, "out": out}
    argv = [a.format(**names) for a in argv]
    assert main(["train", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vitprobe: error: ") and message.format(**names) in err and "\n" not in err
    written = sorted(p.name for p in out.iterdir()) if out.exists() else []
    assert written == (["config.json"] if "--resume" in argv and content else [])  # only what the test wrote


@pytest.mark.parametrize("damage", ["torn", "deleted"])
def test_a_damaged_or_missing_config_json_gives_way_to_the_checkpoints_own_record(tmp_path, capsys, monkeypatch,
                                                                                  damage):
    """With config.json torn or deleted, --resume said to repeat the options (or that the folder
    held no run), and repeated options took the default epochs; now the checkpoint's header,
    which records the run's options, stands in (warned), and the run ends as an uninterrupted
    one; options given are still checked against the train state."""
    options = ["--method", "mae", "--preset", "tiny", "--data", "synthetic:16", "--set", "mask_ratio=0.5", *SMALL]
    assert main(["train", *options, "--out", str(tmp_path / "full")]) == 0
    split = tmp_path / "split"
    stop_after_first_save(lambda: main(["train", *options, "--out", str(split)]), monkeypatch)
    if damage == "torn":
        (split / "config.json").write_text("{torn")
    else:
        (split / "config.json").unlink()
    capsys.readouterr()
    assert main(["train", "--resume", *options[:-3], "--batch-size", "4", "--out", str(split), "--no-progress"]) == 2
    assert "--batch-size was 8, now 4" in capsys.readouterr().err  # checked against the train state's own record
    assert main(["train", "--resume", "--out", str(split), "--no-progress"]) == 0
    problem = ("is not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"
               if damage == "torn" else "is missing")
    assert (f"--resume: {split / 'config.json'} {problem}; resuming with the options that "
            f"{split / 'checkpoint.safetensors'} records") in capsys.readouterr().err
    assert_same_run(tmp_path / "full", split)


def test_resume_says_what_the_out_it_was_pointed_at_is(tmp_path, capsys):
    """An empty folder, a file (a checkpoint given as --out) and a missing path each said
    "holds no training run"."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "final.safetensors").write_bytes(b"x")
    for name, what in (("empty", "holds no training run (no config.json)"),
                       ("final.safetensors", "is a file, not a run folder"), ("missing", "does not exist")):
        assert main(["train", "--resume", "--out", str(tmp_path / name)]) == 2
        assert (f"vitprobe: error: --resume (Python: resume=True): {tmp_path / name} {what}; point --out (out=) at "
                "the folder of the run to continue\n") == capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "final.safetensors"]


def test_with_neither_config_json_nor_a_checkpoint_the_options_given_stand_in(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text("{torn")
    assert main(["train", "--resume", "--out", str(out), "--no-progress"]) == 2
    assert "repeat the run's options (--method, --data, ...) on the command line" in capsys.readouterr().err
    assert main(["train", "--resume", "--method", "mae", "--data", "synthetic:16", "--batch-size", "8",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "config.json is not valid JSON" in err and "resuming with the options given" in err
    assert f"no complete checkpoint in {out}" in err  # what the train state then says


def test_resume_with_another_model_names_the_runs_own(tmp_path, capsys):
    """`--resume --arch X` on a preset run said "give either --arch or --preset, not both"."""
    out = tmp_path / "run"
    assert main(["train", "--method", "mae", "--preset", "tiny", "--data", "synthetic:16", "--epochs", "1",
                 "--batch-size", "8", "--out", str(out), "--no-progress"]) == 0
    for other, named in ((["--arch", "vit_tiny_patch16_224"], "--arch vit_tiny_patch16_224"),
                         (["--preset", "small"], "--preset small")):
        assert main(["train", "--resume", *other, "--out", str(out), "--no-progress"]) == 2
        assert (f"--resume: the run in {out} trains --preset tiny, not {named}; resume without it or start a new "
                "--out") in capsys.readouterr().err
    from vitprobe.train import train
    with pytest.raises(ConfigError, match=f"--resume: the run in {out} trains --preset tiny, not --preset small;"):
        train({"out": str(out), "preset": "small"}, resume=True, progress=False)  # Python: the same check
    assert main(["train", "--resume", "--preset", "tiny", "--out", str(out), "--no-progress"]) == 0  # its own

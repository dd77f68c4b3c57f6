"""``vitprobe inspect``, ``models`` and ``export`` through vitprobe.cli.main."""

from __future__ import annotations

import json
import re

import pytest
import torch
from official_layouts import CASES, VIT, make_case

import vitprobe.cli
from vitprobe.models import load_model
from vitprobe.models.formats import formats


@pytest.fixture(autouse=True)
def only_checkpoint_commands(monkeypatch):
    """Register just this package's sub-commands, so other commands' imports cannot interfere."""
    monkeypatch.setattr(vitprobe.cli, "command_modules", lambda: ["inspect", "models", "export"])


def test_inspect_json(tmp_path, capsys):
    made = make_case(next(c for c in CASES if c.id == "dino-teacher"), tmp_path)
    assert vitprobe.cli.main(["inspect", "--checkpoint", str(made.path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "dino" and info["arch"] == VIT.to_dict()
    assert info["report"]["key"] == "teacher" and info["report"]["fits"] is True and info["report"]["fit_error"] is None
    assert vitprobe.cli.main(["inspect", "--checkpoint", str(made.path)]) == 0
    text = capsys.readouterr().out  # args is read for the heads, so it is not "not read"
    held = next(line for line in text.splitlines() if line.startswith("also held    "))
    assert "args" in held and "student" in held and held.endswith("(entries beside the weights, not loaded; "
                                                                  "hints such as args or arch are read from them)")


def test_inspect_text_names_the_key_the_heads_rule_and_the_dropped_keys(tmp_path, capsys):
    made = make_case(next(c for c in CASES if c.id == "dino-teacher"), tmp_path)
    assert vitprobe.cli.main(["inspect", "--checkpoint", str(made.path), "--num-heads", "4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "format       dino (key teacher)" in lines
    assert next(line for line in lines if line.startswith("architecture ")).endswith("  (heads: given (--num-heads; Python num_heads=))")
    assert f"  patch size 8, width 128, depth {VIT.depth}, heads 4, image size 32," in "\n".join(lines)
    dropped = next(line for line in lines if line.startswith("dropped      "))
    assert dropped.startswith(f"dropped      {len(made.dropped)} keys: DINO projection head")
    assert dropped.endswith(f"(+{len(made.dropped) - 3} more))")


def test_inspect_lists_every_entry_a_timm_training_file_holds(tmp_path, capsys):
    """timm's train.py saves eight entries beside its weights; the EMA weights are one to know of."""
    made = make_case(next(c for c in CASES if c.id == "timm-train"), tmp_path)
    assert vitprobe.cli.main(["inspect", "--checkpoint", str(made.path)]) == 0
    held = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("also held    "))
    assert "state_dict_ema" in held and "more)" not in held


def test_inspect_text_and_a_checkpoint_that_would_not_load(tmp_path, capsys):
    made = make_case(CASES[0], tmp_path)
    assert vitprobe.cli.main(["inspect", "--checkpoint", str(made.path)]) == 0
    assert "strict load  ok" in capsys.readouterr().out
    assert vitprobe.cli.main(["inspect", "--checkpoint", str(made.path), "--num-heads", "1"]) == 0
    assert vitprobe.cli.main(["inspect", "--checkpoint", str(made.path), "--num-heads", "auto"]) == 0  # as analyze
    capsys.readouterr()
    assert vitprobe.cli.main(["inspect", "--checkpoint", str(made.path), "--num-heads", "0"]) == 2
    assert capsys.readouterr().err == "vitprobe: error: --num-heads must be a whole number >= 1 (or auto), got '0'\n"
    odd = make_case(CASES[0], tmp_path, mutate=lambda sd: {**sd, "extra": torch.ones(1)})
    assert vitprobe.cli.main(["inspect", "--checkpoint", str(odd.path)]) == 1
    out = capsys.readouterr().out
    assert "strict load  FAILS" in out and "unexpected 1 key (extra)" in out
    assert re.search(r"^tensors      \d+ read$", out, re.M)  # read from the file: a failed load loaded none


def test_inspect_summarises_a_vitprobe_training_in_readable_lines(tmp_path, capsys):
    from official_layouts import VIT, random_encoder

    from vitprobe.models import save_encoder

    config = {"method": "mocov3", "preset": "tiny", "data": "synthetic:64", "epochs": 30, "batch_size": 32,
              "seed": 3, "lr": None, "hparams": {"momentum": 0.99, "tau": 0.2}}
    path = save_encoder(tmp_path / "final.safetensors", random_encoder(VIT), VIT,
                        {"objective": "mocov3", "objective_revision": 2, "config": config, "epoch": 30,
                         "in_force": {"lr": 0.0005},  # no --lr given: the batch-scaled rate, not "lr null"
                         "warnings": ["epoch 12: contrastive collapse (feature std 0.001)"]})
    assert vitprobe.cli.main(["inspect", "--checkpoint", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    trained = [line for line in lines if line.startswith(("trained", "  warned"))]
    assert trained == ['trained      mocov3 (revision 2), epoch 30 of 30, preset "tiny", data "synthetic:64", '
                       'batch_size 32, lr 0.0005, seed 3, set momentum=0.99 tau=0.2 (--json shows the whole config)',
                       "  warned     epoch 12: contrastive collapse (feature std 0.001)"]  # what --set changed
    from vitprobe.models.loading import training_summary

    assert "batch_size 32 per process x 2 processes, lr 0.0005" in training_summary(
        {"objective": "mocov3", "config": config, "in_force": {"lr": 0.0005}, "world_size": 2})


@pytest.mark.parametrize("hparams,shown", [
    ({"encoder_init": "reference"}, "encoder_init reference"),
    ({"mim": "mae", "cl": "mocov3", "mim_hparams": {"encoder_init": "timm"},
      "cl_hparams": {"encoder_init": "timm"}}, "encoder_init timm"),
    ({"mim": "mae", "cl": "mocov3", "mim_hparams": {"encoder_init": "reference"},
      "cl_hparams": {"encoder_init": "timm"}}, "encoder_init mae reference, mocov3 timm"),
    ({"mim": "simmim", "cl": "mocov3", "mim_hparams": {}, "cl_hparams": {"encoder_init": "timm"}},
     "encoder_init timm"),
    ({"mask_ratio": 0.6}, None),  # SimMIM records no set-up of its own
])
def test_training_summary_says_how_the_encoder_was_set_up(hparams, shown):
    from vitprobe.models.loading import training_summary

    summary = training_summary({"objective": "x", "config": {"epochs": 1}, "epoch": 1,
                                "in_force": {"hparams": hparams}})
    assert summary.endswith(shown) if shown else "encoder_init" not in summary


def test_bad_file_exits_2_with_one_line(tmp_path, capsys):
    path = tmp_path / "photo.pth"
    path.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    assert vitprobe.cli.main(["inspect", "--checkpoint", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vitprobe: error: ") and "\n" not in err and str(path) in err


def test_models_lists_every_format(capsys):
    assert vitprobe.cli.main(["models", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert list(listing["formats"]) == list(formats())
    assert listing["formats"]["mae"]["drops"]["decoder_*"].startswith("MAE decoder")
    assert vitprobe.cli.main(["models"]) == 0
    text = capsys.readouterr().out
    assert "MoCo v3 names set heads: vit_small 12" in text
    assert "  --key teacher|student (default teacher)" in text and "(default base_encoder)" in text
    assert "              drops decoder_*: MAE decoder (pre-training only)" in text.splitlines()
    assert "  every format drops *relative_position_index: relative position index buffer" in text


@pytest.mark.parametrize("command", ["inspect", "analyze"])
def test_the_key_help_lists_every_formats_sub_checkpoints(command, capsys, monkeypatch):
    monkeypatch.setattr(vitprobe.cli, "command_modules", lambda: [command])
    with pytest.raises(SystemExit):
        vitprobe.cli.main([command, "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    for fmt in formats().values():
        if fmt.keys:
            assert f"{fmt.name} {'|'.join(fmt.keys)}" in shown


def test_export_command(tmp_path, capsys):
    made = make_case(next(c for c in CASES if c.id == "vitprobe"), tmp_path)
    out = tmp_path / "mocov3.pth.tar"
    argv = ["export", "--checkpoint", str(made.path), "--format", "mocov3", "--out", str(out)]
    assert vitprobe.cli.main(argv) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert torch.equal(load_model(out).blocks[1].mlp.fc2.weight, made.encoder.blocks[1].mlp.fc2.weight)
    assert vitprobe.cli.main(argv) == 2  # exists, no --overwrite


def test_debug_shows_the_traceback_before_or_after_the_command(tmp_path):
    from vitprobe.cli import main
    from vitprobe.errors import CheckpointError

    missing = str(tmp_path / "missing.pth")
    assert main(["inspect", "--checkpoint", missing]) == 2
    for argv in (["--debug", "inspect", "--checkpoint", missing], ["inspect", "--checkpoint", missing, "--debug"]):
        with pytest.raises(CheckpointError, match="not found"):
            main(argv)


def test_a_training_run_folder_given_as_the_checkpoint_names_its_final_file(tmp_path, capsys):
    from official_layouts import VIT, random_encoder

    from vitprobe.models import save_encoder

    run = tmp_path / "runs" / "mae"
    save_encoder(run / "final.safetensors", random_encoder(VIT), VIT, {"objective": "mae"})
    assert vitprobe.cli.main(["inspect", "--checkpoint", str(run)]) == 2
    assert (f"checkpoint {run} is a directory; pass the checkpoint file inside it (a vitprobe training run: "
            f"{run / 'final.safetensors'})") in capsys.readouterr().err

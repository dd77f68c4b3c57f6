"""`vitprobe analyze` passes --key/--format/--num-heads/--img-size through to the loader."""

from __future__ import annotations

import json

import pandas as pd
from official_layouts import CASES, make_case

import vitprobe.cli


def _analyze(tmp_path, made, out: str, *extra: str) -> int:
    return vitprobe.cli.main(["analyze", "--checkpoint", str(made.path), "--data", "synthetic:8",
                              "--analyses", "attention_distance", "--batch-size", "4",
                              "--no-progress", "--out", str(tmp_path / out), *extra])


def test_key_selects_student_or_teacher(tmp_path, capsys):
    made = make_case(next(c for c in CASES if c.id == "dino-teacher"), tmp_path)
    assert _analyze(tmp_path, made, "teacher") == 0
    assert _analyze(tmp_path, made, "student", "--key", "student") == 0
    [teacher] = (tmp_path / "teacher").glob("*/attention_distance.csv")
    [student] = (tmp_path / "student").glob("*/attention_distance.csv")
    assert student.parent.name.endswith("-student")  # the run's label names the chosen encoder
    protocols = [json.loads(t.with_suffix(".json").read_text(encoding="utf-8"))["checkpoint"] for t in (teacher, student)]
    assert [p["key"] for p in protocols] == ["teacher", "student"]
    assert all(p["num_heads_from"] and p["sha256"] == protocols[0]["sha256"] for p in protocols)
    # The factory's student weights are the teacher's plus one: the tables must differ.
    assert not pd.read_csv(teacher)["value"].equals(pd.read_csv(student)["value"])


def test_img_size_and_wrong_format(tmp_path, capsys):
    made = make_case(next(c for c in CASES if c.id == "dino-teacher"), tmp_path)
    assert _analyze(tmp_path, made, "big", "--img-size", "48") == 0
    [table] = (tmp_path / "big").glob("*/attention_distance.csv")
    assert pd.read_csv(table)["value"].max() > 0
    capsys.readouterr()
    assert _analyze(tmp_path, made, "wrong", "--format", "mae") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vitprobe: error:") and str(made.path) in err and "\n" not in err
    assert not (tmp_path / "wrong").exists()


def test_key_and_format_once_per_checkpoint(tmp_path, capsys, recwarn):
    """One file read twice, with its two sub-checkpoints, beside a file of another layout: each
    --key/--format is its checkpoint's (auto: the default), and no 'same file' warning."""
    train = make_case(next(c for c in CASES if c.id == "timm-train"), tmp_path)
    ddp = make_case(next(c for c in CASES if c.id == "timm-ddp"), tmp_path)
    assert vitprobe.cli.main(["analyze", "--data", "synthetic:8", "--analyses", "attention_distance",
                              "--batch-size", "4", "--no-progress", "--out", str(tmp_path / "three"),
                              "--checkpoint", str(train.path), "--checkpoint", str(train.path),
                              "--checkpoint", str(ddp.path), "--key", "auto", "--key", "state_dict_ema",
                              "--key", "auto", "--format", "timm", "--format", "auto", "--format", "auto",
                              "--label", "raw", "--label", "ema", "--label", "ddp",
                              "--num-heads", "auto", "--num-heads", "4", "--num-heads", "2"]) == 0
    protocols = {t.parent.name: json.loads(t.with_suffix(".json").read_text(encoding="utf-8"))["checkpoint"]
                 for t in (tmp_path / "three").glob("*/attention_distance.csv")}
    assert {name: p["key"] for name, p in protocols.items()} == {"raw": "state_dict", "ema": "state_dict_ema",
                                                                 "ddp": None}
    assert {name: (p["arch"]["num_heads"], p["num_heads_from"].startswith("given")) for name, p in protocols.items()} == {
        "raw": (2, False), "ema": (4, True), "ddp": (2, True)}
    assert not [w for w in recwarn if "same file" in str(w.message)]
    assert "same file" not in capsys.readouterr().err  # the command line prints its warnings
    assert vitprobe.cli.main(["analyze", "--data", "synthetic:8", "--checkpoint", str(train.path),
                              "--checkpoint", str(ddp.path), "--checkpoint", str(ddp.path),
                              "--key", "auto", "--key", "auto"]) == 2
    assert "--key given 2 times for 3 --checkpoint; give it once" in capsys.readouterr().err
    for wrong in ("0", "two"):
        assert vitprobe.cli.main(["analyze", "--data", "synthetic:8", "--checkpoint", str(ddp.path),
                                  "--num-heads", wrong]) == 2
        assert f"--num-heads must be a whole number >= 1 (or auto), got '{wrong}'" in capsys.readouterr().err

"""--resume reaches exactly the weights of an uninterrupted run; checkpoints survive crashes."""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
from test_engine import run_toy, toy_config, toy_dataset  # noqa: E402

from vitprobe.errors import CheckpointError, ConfigError, DataError, OutputExistsError  # noqa: E402
from vitprobe.models import load_model  # noqa: E402
from vitprobe.train import checkpointing as ckpt  # noqa: E402
from vitprobe.train import TrainConfig, train  # noqa: E402


def assert_same_run(a: Path, b: Path) -> None:
    """Bit-identical final encoders, training states (objective, optimiser) and logs."""
    fa, fb = load_file(a / "final.safetensors"), load_file(b / "final.safetensors")
    assert fa.keys() == fb.keys() and all(torch.equal(fa[k], fb[k]) for k in fa)
    sa = torch.load(a / ckpt.STATE_FILE, weights_only=True)
    sb = torch.load(b / ckpt.STATE_FILE, weights_only=True)
    assert all(torch.equal(v, sb["objective"][k]) for k, v in sa["objective"].items())
    for k, v in sa["optimizer"]["state"].items():
        assert all(torch.equal(t, sb["optimizer"]["state"][k][n]) for n, t in v.items())
    assert (a / "log.csv").read_text(encoding="utf-8") == (b / "log.csv").read_text(encoding="utf-8")


class StopAfterFirstSave(Exception):
    pass


def stop_after_first_save(start, monkeypatch) -> None:
    """Call ``start()`` (a fresh run) and stop it right after its first checkpoint is saved."""
    save = ckpt.save_checkpoint

    def save_then_stop(*args, **kwargs):
        save(*args, **kwargs)
        raise StopAfterFirstSave

    monkeypatch.setattr(ckpt, "save_checkpoint", save_then_stop)
    with pytest.raises(StopAfterFirstSave):
        start()
    monkeypatch.setattr(ckpt, "save_checkpoint", save)


def split_then_resume(run, tmp_path: Path, monkeypatch) -> None:
    """``run(out, resume)`` uninterrupted, and stopped after its first checkpoint then
    resumed: the two must be bit-identical."""
    run(tmp_path / "full", False)
    stop_after_first_save(lambda: run(tmp_path / "split", False), monkeypatch)
    assert torch.load(tmp_path / "split" / ckpt.STATE_FILE, weights_only=True)["epoch"] == 1
    run(tmp_path / "split", True)
    assert_same_run(tmp_path / "full", tmp_path / "split")


def test_one_epoch_then_resume_equals_two_epochs(tmp_path, monkeypatch):
    split_then_resume(lambda out, resume: run_toy(out, resume), tmp_path, monkeypatch)


def test_a_run_whose_image_folder_moved_resumes_from_its_new_place(tmp_path, monkeypatch):
    """The folder a run read moved (or is mounted elsewhere on another machine): --resume said
    only that the folder did not exist, and refused its new place as other data; now the
    error names the way out, and the new place of as many images resumes (warned), exactly."""
    from PIL import Image

    from vitprobe.cli import main
    from vitprobe.errors import VitprobeWarning

    gen = np.random.default_rng(0)
    for i in range(16):
        path = tmp_path / "imgs" / f"c{i % 2}" / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(gen.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path)
    options = ["--method", "mae", "--preset", "tiny", "--epochs", "2", "--batch-size", "8", "--no-progress"]
    assert main(["train", *options, "--data", f"folder:{tmp_path / 'imgs'}", "--out", str(tmp_path / "full")]) == 0
    split = tmp_path / "split"
    stop_after_first_save(lambda: main(["train", *options, "--data", f"folder:{tmp_path / 'imgs'}",
                                        "--out", str(split)]), monkeypatch)
    (tmp_path / "imgs").rename(tmp_path / "moved")
    with pytest.raises(DataError, match=r"^--resume: .*imgs.*; if the run's data moved, give its new place as --data "
                                        r"\(Python: data=\), of the same kind$"):
        train({"out": str(split)}, resume=True, progress=False)
    with pytest.raises(ConfigError, match=r"--data was \"folder:.*\", now \"synthetic:16\""):  # another kind: other data
        train({"out": str(split), "data": "synthetic:16"}, resume=True, progress=False)
    with pytest.warns(VitprobeWarning, match=rf"--resume: the run in {split} read folder:{tmp_path / 'imgs'}; "
                                             rf"resuming on folder:{tmp_path / 'moved'} as the same 16 images moved"):
        train({"out": str(split), "data": f"folder:{tmp_path / 'moved'}"}, resume=True, progress=False)
    assert_same_run(tmp_path / "full", split)


def test_resume_with_other_options_is_refused(tmp_path):
    run_toy(tmp_path / "run", epochs=1)
    with pytest.raises(CheckpointError, match="no complete checkpoint"):
        run_toy(tmp_path / "empty", resume=True)
    shutil.copytree(tmp_path / "run", tmp_path / "half")
    (tmp_path / "half" / ckpt.ENCODER_FILE).unlink()  # "start without --resume" there met "pass --resume"
    with pytest.raises(CheckpointError, match=rf"holds {ckpt.STATE_FILE} but not {ckpt.ENCODER_FILE}, so the run "
                                              r"folder is damaged; restore the file, or start a new --out"):
        run_toy(tmp_path / "half", resume=True, epochs=1)
    with pytest.raises(ConfigError, match=r"--resume: options differ .*\(--batch-size was 4, now 8; the peak "
                                          r"learning rate .* was 1.5625e-05, now 3.125e-05\)"):
        run_toy(tmp_path / "run", resume=True, epochs=1, batch_size=8)


def test_resume_compares_the_values_in_force_not_how_they_were_given(tmp_path):
    out = tmp_path / "run"
    run_toy(out, epochs=2, save_every=1)
    state = torch.load(out / ckpt.STATE_FILE, weights_only=True)
    assert state["in_force"]["hparams"]["momentum"] == 0.9 and state["in_force"]["lr"] > 0
    assert state["in_force"]["hparams"]["warmup_epochs"] == 1  # the tiny preset's max(1, 2 // 10), not ToyMIM's 3
    with pytest.raises(ConfigError, match=r"\(--set momentum was 0.9, now 0.8\)"):
        run_toy(out, resume=True, epochs=2, save_every=1, hparams={"momentum": 0.8})
    run_toy(out, resume=True, epochs=2, save_every=1, hparams={"momentum": 0.9},  # the default, named
            lr=state["in_force"]["lr"])  # the learning rate the default batch scaling gave
    # a preset's warm-up follows from the epochs: other epochs are named alone, never as a --set
    with pytest.raises(ConfigError, match=r"\(--epochs was 2, now 1\); give the run's own values"):
        run_toy(out, resume=True, epochs=1, save_every=1)
    with pytest.raises(ConfigError, match="to its own 2 epochs .* cannot be extended"):
        run_toy(out, resume=True, epochs=20, save_every=1)  # a warm-up of 2 epochs, not 1
    with pytest.raises(ConfigError, match=r"\(--epochs was 2, now 1; --set warmup_epochs was 1, now 0\)"):
        run_toy(out, resume=True, epochs=1, save_every=1, hparams={"warmup_epochs": 0})  # given: named


def test_resume_names_the_process_count_the_lambda_once_and_a_changed_recipe(tmp_path):
    from vitprobe.train.engine import _check_resume

    out = tmp_path / "hybrid"
    config = TrainConfig(method="hybrid", lam=0.5, preset="tiny", epochs=1, batch_size=8,
                         data="synthetic:16", out=str(out))
    train(config, progress=False)
    state = torch.load(out / ckpt.STATE_FILE, weights_only=True)
    assert "lam" not in state["in_force"]["hparams"] and state["in_force"]["revisions"].keys() == {
        "hybrid", "simmim", "mocov3"}
    from vitprobe.models.architecture import build_model
    from vitprobe.train.objectives import get_objective

    mixed = get_objective("hybrid", build_model(config.arch_spec()), config.arch_spec(),
                          **config.objective_hparams()).stochastic_depth()
    assert state["in_force"]["hparams"]["drop_path"] is None  # not set: mixed from the branches (0 on tiny)
    assert state["in_force"]["drop_path"] == mixed  # the rate the encoder trained with
    in_force = state["in_force"]
    with pytest.raises(ConfigError, match="used 1 process, not 2"):  # not a learning-rate change
        _check_resume(config, state, 2, in_force={**in_force, "lr": in_force["lr"] * 2})
    with pytest.raises(ConfigError, match=r"\(--lambda was 0.5, now 0.7\)"):  # once, not also as --set lam
        _check_resume(dataclasses.replace(config, lam=0.7), state, 1, in_force=in_force)
    assert in_force["images"] == 16
    with pytest.raises(ConfigError, match=r"the data synthetic:16 held 16 images when the run .* was saved, and "
                                          r"holds 12 now; .*restore the data or start a new --out$"):
        _check_resume(config, state, 1, in_force={**in_force, "images": 12})  # a folder that lost images
    with pytest.raises(ConfigError, match=r"options differ from the run in .* \(--data was \"synthetic:16\", "
                                          r"now \"synthetic:32\"\); give the run's own values"):
        _check_resume(dataclasses.replace(config, data="synthetic:32"), state, 1, in_force={**in_force, "images": 32})
    newer = {**in_force, "revisions": {**in_force["revisions"], "simmim": 99}}
    with pytest.raises(ConfigError, match=r"recipe changed since the run was saved .*resuming would mix two "
                                          r"recipes; start a new --out$"):
        _check_resume(config, state, 1, in_force=newer)
    with pytest.raises(ConfigError) as other_branch:  # another branch is an option, not a changed recipe
        train(dataclasses.replace(config, hparams={"mim": "mae"}), resume=True, progress=False)
    assert "(--set mim was \"simmim\", now \"mae\"); give the run's own values" in str(other_branch.value)


def test_a_run_saved_before_values_in_force_resumes_with_its_dataset(tmp_path):
    from vitprobe.train.engine import _check_resume

    old = {"config": {**toy_config(tmp_path).to_dict(), "epochs": 1}, "world_size": 1}  # data: the default spec
    now = toy_config(tmp_path, epochs=1, data="custom:list[16]")
    with pytest.raises(ConfigError, match="--data was"):
        _check_resume(now, old, 1)
    _check_resume(now, old, 1, given_dataset=True)  # what such a run recorded says nothing of its data


def test_a_torn_log_header_starts_the_log_afresh_on_resume(tmp_path, monkeypatch):
    out = tmp_path / "run"
    stop_after_first_save(lambda: run_toy(out), monkeypatch)
    (out / "log.csv").write_text("epoch,st", encoding="utf-8")
    run_toy(out, resume=True)
    lines = (out / "log.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("epoch,step,loss") and len(lines) == 1 + 4  # the second epoch's steps
    assert lines[1].startswith("1,4,")


def test_a_foreign_log_is_kept_and_refused_on_resume_as_by_a_new_run(tmp_path, monkeypatch):
    """A log.csv that is not a training log (nor the start of one's header) was replaced by
    --resume, which a new run refuses to do."""
    out = tmp_path / "run"
    stop_after_first_save(lambda: run_toy(out), monkeypatch)
    (out / "log.csv").write_text("garbage,line\n", encoding="utf-8")
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != ".lock"}
    with pytest.raises(OutputExistsError, match=r"log.csv is not a vitprobe training log and resuming would "
                                                r"replace it; move it or choose another --out$"):
        run_toy(out, resume=True)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != ".lock"} == before


def test_a_torn_last_log_line_is_dropped_on_resume(tmp_path, monkeypatch):
    def torn(out: Path, resume: bool) -> None:
        if resume:  # a kill in the middle of writing a row
            with open(out / "log.csv", "a", encoding="utf-8") as f:
                f.write("1,")
        run_toy(out, resume)

    split_then_resume(torn, tmp_path, monkeypatch)


def test_resume_from_an_unreadable_state_or_another_process_count_is_refused(tmp_path, monkeypatch, capsys):
    from vitprobe.distributed import launcher
    from vitprobe.train.engine import _check_resume

    out = tmp_path / "run"
    run_toy(out, epochs=1)
    state = torch.load(out / ckpt.STATE_FILE, weights_only=True)
    config = toy_config(out, epochs=1, data="custom:list[16]")  # what train(dataset=...) recorded
    _check_resume(config, state, 1)  # the same run resumes
    with pytest.raises(ConfigError, match=r"--data was \"custom:list\[16\]\", now \"digits\""):
        _check_resume(toy_config(out, epochs=1, data="digits"), state, 1)
    with pytest.raises(ConfigError, match="used 1 process, not 2; resume with the same process count: vitprobe train "
                                          f"--resume --out {out}$"):
        _check_resume(config, state, 2)
    with pytest.raises(ConfigError, match="used 2 processes, not 1; resume with the same process count: torchrun "
                                          f"--nproc_per_node 2 -m vitprobe train --resume --out {out}$"):
        _check_resume(config, {**state, "world_size": 2}, 1)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # a launch over nodes of 4 processes each
    assert launcher(8) == "torchrun --nnodes 2 --nproc_per_node 4 -m vitprobe"
    assert launcher(6) == "torchrun --nproc_per_node 6 -m vitprobe"  # 4 per node cannot make 6
    saved_state = (out / ckpt.STATE_FILE).read_bytes()
    torch.save({**state, "world_size": 2}, out / ckpt.STATE_FILE)  # as a finished 2-process run saved it
    assert run_toy(out, resume=True, epochs=1) == out / ckpt.FINAL_FILE  # nothing to run: any process count
    assert capsys.readouterr().out == f"{out}: the run is complete (1 of 1 epochs); nothing to do\n"
    kept = {name: (out / name).read_bytes() for name in (ckpt.STATE_FILE, ckpt.ENCODER_FILE)}
    for name in kept:  # the pair serves only --resume: a finished run's may be deleted
        (out / name).unlink()
    assert run_toy(out, resume=True, epochs=1) == out / ckpt.FINAL_FILE
    assert capsys.readouterr().out == (f"{out}: the run is complete (final.safetensors; the checkpoint pair that "
                                       "--resume reads was deleted); nothing to do\n")
    for name, data in kept.items():
        (out / name).write_bytes(data)
    with pytest.raises(ConfigError, match="used 2 processes, not 1"):  # more epochs: the count matters again
        run_toy(out, resume=True, epochs=2)
    with pytest.raises(ConfigError, match="trains mae, not simmim"):  # other options are still the run's own
        run_toy(out, resume=True, epochs=1, method="simmim")
    (out / ckpt.STATE_FILE).write_bytes(saved_state)
    encoder = (out / ckpt.ENCODER_FILE).read_bytes()
    (out / ckpt.ENCODER_FILE).write_bytes(encoder[:1000])  # the header says more than the file holds
    with pytest.raises(CheckpointError, match="cannot be read") as err:
        run_toy(out, resume=True, epochs=1)
    assert str(out / ckpt.ENCODER_FILE) in str(err.value) and "\n" not in str(err.value)
    (out / ckpt.ENCODER_FILE).write_bytes(encoder)
    state_bytes = (out / ckpt.STATE_FILE).read_bytes()
    for damaged, reason in ((b"not a torch file", "not a train state vitprobe wrote: Unsupported operand"),
                            (state_bytes[:len(state_bytes) // 2], "failed reading zip archive")):  # cut by a full disk
        (out / ckpt.STATE_FILE).write_bytes(damaged)
        with pytest.raises(CheckpointError, match=f"cannot be read \\(.*{reason}.*\\); the run folder is damaged") as err:
            run_toy(out, resume=True, epochs=1)
        assert str(out / ckpt.STATE_FILE) in str(err.value) and "\n" not in str(err.value)


def test_disk_full_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "run"
    real_save, calls = torch.save, []

    def save_until_disk_full(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the second checkpoint: half a file, then ENOSPC
            f.write(b"\0" * 1000)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_until_disk_full)
    with pytest.raises(CheckpointError) as err:
        run_toy(out, epochs=3)
    msg = str(err.value)
    assert "\n" not in msg and "No space left on device" in msg and "--resume" in msg
    assert not (out / ckpt.STAGING_DIR).exists()
    assert ckpt.load_train_state(out)["epoch"] == 1
    monkeypatch.setattr(torch, "save", real_save)
    run_toy(out, resume=True, epochs=3)
    run_toy(tmp_path / "full", epochs=3)
    assert_same_run(tmp_path / "full", out)


def test_kill_between_the_two_renames_is_rolled_forward(tmp_path, monkeypatch):
    out = tmp_path / "run"
    run_toy(out, epochs=1)
    old_step = ckpt.load_train_state(out)["step"]
    real_replace, moves = os.replace, []

    def replace_then_die(src, dst):
        if Path(src).parent.name == ckpt.STAGING_DIR and Path(dst).parent == out:
            moves.append(dst)
            if len(moves) == 2:
                raise KeyboardInterrupt  # killed after the encoder moved, before the state did
        return real_replace(src, dst)

    arch = toy_config(out).arch_spec()
    state = torch.load(out / ckpt.STATE_FILE, weights_only=True)
    state["step"] = old_step + 100
    encoder = load_model(out / "final.safetensors")
    monkeypatch.setattr(ckpt.os, "replace", replace_then_die)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(out, encoder, arch, {"step": old_step + 100}, state)
    monkeypatch.setattr(ckpt.os, "replace", real_replace)
    assert torch.load(out / ckpt.STATE_FILE, weights_only=True)["step"] == old_step  # mismatched
    assert ckpt.load_train_state(out)["step"] == old_step + 100  # rolled forward, consistent
    assert not (out / ckpt.STAGING_DIR).exists()


CHILD = """
import sys
sys.path.insert(0, {tests!r})
from test_engine import run_toy
run_toy(__import__("pathlib").Path({out!r}), resume={resume}, epochs=4)
"""


def _child(out: Path, resume: bool) -> subprocess.Popen:
    code = CHILD.format(tests=str(Path(__file__).parent), out=str(out), resume=resume)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


@pytest.mark.slow
def test_sigkill_between_checkpoints_then_resume_is_exact(tmp_path):
    full = _child(tmp_path / "full", resume=False)
    assert full.wait(timeout=300) == 0, full.stderr.read().decode()
    kill_at = 10  # of 16 steps; checkpoints after 4, 8, 12: steps 9 and 10 are lost and redone
    run = _child(tmp_path / "killed", resume=False)
    log = tmp_path / "killed" / "log.csv"
    deadline = time.time() + 300
    while run.poll() is None and time.time() < deadline:
        if log.exists() and log.read_text(encoding="utf-8").count("\n") > kill_at:  # header + kill_at rows
            os.kill(run.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    assert run.wait(timeout=60) == -signal.SIGKILL, f"run ended before step {kill_at}"
    resumed = _child(tmp_path / "killed", resume=True)
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read().decode()
    assert_same_run(tmp_path / "full", tmp_path / "killed")


DINO_SMALL = {"out_dim": 128, "n_local": 2, "head_hidden_dim": 64, "head_bottleneck_dim": 32,
              "drop_path": 0.1}


def test_registered_dino_resumes_exactly(tmp_path, monkeypatch):
    """The real DINO objective: teacher, centre, frozen last layer and per-tensor clipping
    all live in the training state, and the student's stochastic depth draws from the step's
    seed, so a split run equals an uninterrupted one."""
    def dino(out: Path, resume: bool) -> Path:
        config = toy_config(out, method="dino", batch_size=8, hparams=DINO_SMALL)
        return train(config, resume=resume, dataset=toy_dataset())

    split_then_resume(dino, tmp_path, monkeypatch)


def test_collapse_warnings_travel_with_the_checkpoint_across_a_resume(tmp_path, monkeypatch):
    """Every epoch's collapse warning is kept in the encoder's metadata (a resumed run keeps the
    ones said before it): the first with its advice, later ones in short, the same in a resumed
    run as in an uninterrupted one; loading that encoder says so; a calm run records none."""
    from vitprobe.models import inspect_checkpoint
    from vitprobe.errors import VitprobeWarning

    def warned(folder: Path) -> list[str]:
        return inspect_checkpoint(folder / "final.safetensors")["report"]["training"]["warnings"]

    split_then_resume(lambda out, resume: run_toy(out, resume, hparams={"collapse_dim": 64}), tmp_path, monkeypatch)
    said = warned(tmp_path / "full")
    assert warned(tmp_path / "split") == said
    assert [w.split(":")[0] for w in said] == ["epoch 0", "epoch 1"]
    assert "lower the learning rate" in said[0]
    assert said[1].startswith("epoch 1: contrastive collapse persists (embedding std ")
    assert said[1].endswith(") since epoch 0, whose warning gives the advice")
    with pytest.warns(VitprobeWarning, match=r"training warned of a collapse \(and in 1 later epoch\): epoch 0: "
                                             "contrastive collapse"):
        load_model(tmp_path / "split" / "final.safetensors")
    assert warned(run_toy(tmp_path / "calm").parent) == []


def test_a_staging_folder_without_its_marker_is_discarded(tmp_path):
    """A save killed before it marked its staging folder complete leaves the previous pair as it was."""
    (tmp_path / ckpt.ENCODER_FILE).write_bytes(b"old encoder")
    (tmp_path / ckpt.STATE_FILE).write_bytes(b"old state")
    staging = tmp_path / ckpt.STAGING_DIR
    staging.mkdir()
    (staging / ckpt.ENCODER_FILE).write_bytes(b"new encoder")  # killed before the state and the marker
    ckpt.recover(tmp_path)
    assert (tmp_path / ckpt.ENCODER_FILE).read_bytes() == b"old encoder" and not staging.exists()


def test_an_encoder_and_a_state_of_different_steps_are_refused(tmp_path):
    out = tmp_path / "run"
    run_toy(out, epochs=1)
    state = torch.load(out / ckpt.STATE_FILE, weights_only=True)
    state["step"] += 1
    torch.save(state, out / ckpt.STATE_FILE)
    with pytest.raises(CheckpointError, match="do not belong together"):
        ckpt.load_train_state(out)


def test_rng_states_round_trip_through_capture_and_restore() -> None:
    import random

    state = ckpt.capture_rng()
    first = (random.random(), float(np.random.rand()), np.random.normal(), float(torch.rand(())))
    ckpt.restore_rng(state)
    assert (random.random(), float(np.random.rand()), np.random.normal(), float(torch.rand(()))) == first


def test_a_marked_staging_folder_counts_as_a_checkpoint(tmp_path) -> None:
    """A run killed between the marker and the swap has a checkpoint: recover() will roll it forward."""
    assert not ckpt.has_checkpoint(tmp_path)
    (tmp_path / ckpt.STAGING_DIR).mkdir()
    (tmp_path / ckpt.STAGING_DIR / ckpt.MARKER).write_bytes(b"ok\n")
    assert ckpt.has_checkpoint(tmp_path)


def test_the_swap_is_made_durable_with_an_fsync_of_the_run_folder(tmp_path, monkeypatch) -> None:
    staging = tmp_path / ckpt.STAGING_DIR
    staging.mkdir()
    for name in (ckpt.ENCODER_FILE, ckpt.STATE_FILE, ckpt.MARKER):
        (staging / name).write_bytes(name.encode())
    synced = []
    monkeypatch.setattr(ckpt, "fsync_path", lambda p: synced.append((p, sorted(x.name for x in p.iterdir()))))
    ckpt.recover(tmp_path)
    assert (tmp_path, sorted([ckpt.ENCODER_FILE, ckpt.STATE_FILE, ckpt.STAGING_DIR])) in synced


def test_a_save_killed_midway_never_rolls_forward_a_stale_marked_staging(tmp_path, monkeypatch) -> None:
    """A staging folder left marked COMPLETE by an older run must not be reused: a save killed
    after writing the new encoder but before the state would otherwise roll forward the new
    encoder with the stale state."""
    for name, data in ((ckpt.ENCODER_FILE, b"old encoder"), (ckpt.STATE_FILE, b"old state")):
        (tmp_path / name).write_bytes(data)
    staging = tmp_path / ckpt.STAGING_DIR
    staging.mkdir()
    for name in (ckpt.ENCODER_FILE, ckpt.STATE_FILE, ckpt.MARKER):
        (staging / name).write_bytes(b"stale")

    def kill(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies while writing the state

    monkeypatch.setattr(ckpt, "save_encoder", lambda path, *a, **k: path.write_bytes(b"new encoder"))
    monkeypatch.setattr(ckpt, "write_torch", kill)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(tmp_path, None, None, {}, {})
    ckpt.recover(tmp_path)  # what the next --resume does first
    assert (tmp_path / ckpt.ENCODER_FILE).read_bytes() == b"old encoder"
    assert (tmp_path / ckpt.STATE_FILE).read_bytes() == b"old state"


def test_the_final_encoder_is_written_durably(tmp_path, monkeypatch) -> None:
    """final.safetensors is fsync'd before its rename and its folder after it (save_final's docstring)."""
    from vitprobe import output_paths
    from vitprobe.models.architecture import ArchSpec, build_model

    arch = ArchSpec(img_size=32, patch_size=4, embed_dim=32, depth=1, num_heads=2)
    synced = []
    monkeypatch.setattr(output_paths, "fsync_path", lambda p: synced.append(Path(p)))
    path = ckpt.save_final(tmp_path, build_model(arch), arch, {})
    assert path == tmp_path / ckpt.FINAL_FILE and path.is_file()
    assert tmp_path in synced  # the folder, after the rename
    assert any(p.parent == tmp_path and p.suffix == ".safetensors" for p in synced)  # the temp file, before it


def test_a_changed_branch_hparam_is_named_inside_its_branch() -> None:
    from vitprobe.train.engine import _option_difference

    saved = {"momentum": 0.99, "mim_hparams": {"mask_ratio": 0.6, "base_lr": 1e-4}}
    now = {"momentum": 0.9, "mim_hparams": {"mask_ratio": 0.5, "base_lr": 1e-4, "betas": [0.9, 0.999]}}
    assert _option_difference("hparams in force", saved, now) == (  # by name
        "betas in --set mim_hparams was (not recorded), now [0.9, 0.999]; "  # saved by an older vitprobe
        "mask_ratio in --set mim_hparams was 0.6, now 0.5; --set momentum was 0.99, now 0.9")
    assert _option_difference("hparams in force", {"clip_grad": None}, {"clip_grad": 1.0}) == \
        "--set clip_grad was null, now 1.0"  # recorded as None: not "not recorded"

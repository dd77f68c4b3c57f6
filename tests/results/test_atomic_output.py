"""Output folders are refused when taken, replaced only when complete, never left half-written."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys

import pytest
from tables import make_results

import vitprobe.results as results_module
from vitprobe.errors import OutputExistsError
from vitprobe.output_paths import check_output
from vitprobe.results import Run


@pytest.fixture
def run():
    results = make_results()
    return Run({k: results[k] for k in ("attention_distance", "fourier", "knn")}, label="r")


def _siblings(path):
    return sorted(p.name for p in path.parent.iterdir() if p.name != path.name)


def test_existing_non_empty_folder_is_refused(tmp_path, run):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="--overwrite") as info:
        run.save(out)
    assert "\n" not in str(info.value)
    assert (out / "keep.txt").read_text(encoding="utf-8") == "mine"
    assert _siblings(out) == []


def test_python_analyze_refuses_a_taken_output_before_reading_the_checkpoint(tmp_path):
    import vitprobe

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("keep")
    with pytest.raises(OutputExistsError, match="folder exists and is not empty"):
        vitprobe.analyze(tmp_path / "missing.pth", "synthetic:4", out=tmp_path / "out", progress=False)
    assert (tmp_path / "out" / "notes.txt").read_text() == "keep"


def test_empty_folder_is_used(tmp_path, run):
    out = tmp_path / "out"
    out.mkdir()
    run.save(out)
    assert (out / "run.json").is_file()


def test_a_file_browsers_own_files_neither_fill_a_folder_nor_stop_an_overwrite(tmp_path, run):
    """macOS Finder leaves .DS_Store (Windows Explorer Thumbs.db) in every folder it shows."""
    out = tmp_path / "out"
    out.mkdir()
    (out / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    run.save(out)
    assert (out / "run.json").is_file()
    (out / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (out / "Thumbs.db").write_bytes(b"x")
    run.save(out, overwrite=True)
    assert (out / "run.json").is_file() and _siblings(out) == []


def test_another_processs_write_check_does_not_fill_a_folder(tmp_path):
    """Each torchrun rank tests that --out is writable by making and removing an empty folder in
    it; rank 0, checking that a new run's folder is empty at that instant, must not see one."""
    from vitprobe.output_paths import WRITE_CHECK_PREFIX, check_output_folder
    from vitprobe.train.engine import _check_new_run_folder

    out = tmp_path / "run"
    out.mkdir()
    (out / f"{WRITE_CHECK_PREFIX}x1y2").mkdir()  # rank 1's, between its mkdtemp and rmdir
    _check_new_run_folder(check_output_folder(out))
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="notes.txt, which a training run would mix with"):
        _check_new_run_folder(out)


def test_overwrite_replaces_the_old_folder(tmp_path, run):
    out = tmp_path / "out"
    run.save(out)
    (out / "token_similarity.csv").write_text("old")  # an analysis the new run does not have
    run.save(out, overwrite=True)
    assert not (out / "token_similarity.csv").exists()
    assert (out / "fourier.csv").is_file()
    assert _siblings(out) == []


def test_overwrite_never_deletes_what_a_user_put_beside_the_results(tmp_path, run):
    out = tmp_path / "out"
    run.save(out / "a")
    run.save(out / "b")
    (out / "runs.json").write_text("[]")
    (out / "a" / "NOTES.txt").write_text("mine")
    (out / "mydata").mkdir()
    with pytest.raises(OutputExistsError, match=r"did not write \(a/NOTES.txt, mydata/\)") as info:
        run.save(out, overwrite=True)
    assert "\n" not in str(info.value)
    assert (out / "a" / "NOTES.txt").read_text(encoding="utf-8") == "mine" and (out / "mydata").is_dir()
    (out / "a" / "NOTES.txt").unlink()
    (out / "mydata").rmdir()
    run.save(out, overwrite=True)  # only vitprobe's files left: replaced
    assert (out / "run.json").is_file() and not (out / "a").exists()
    assert _siblings(out) == []


def test_overwrite_never_replaces_a_link_to_another_run(tmp_path, run):
    run.save(tmp_path / "elsewhere")
    out = run.save(tmp_path / "out")
    (out / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(OutputExistsError, match=r"holds files vitprobe did not write \(linked\)"):
        check_output(out, overwrite=True)


def test_overwrite_never_replaces_what_is_not_an_analysis_output(tmp_path, run):
    training_run = tmp_path / "train"
    training_run.mkdir()
    (training_run / "final.safetensors").write_bytes(b"weights")
    with pytest.raises(OutputExistsError, match="not an analysis output"):
        run.save(training_run, overwrite=True)
    assert [p.name for p in training_run.iterdir()] == ["final.safetensors"]
    assert _siblings(training_run) == []


def test_an_output_under_a_file_is_refused_before_any_work(tmp_path, run):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    with pytest.raises(OutputExistsError, match="is a file, not a folder"):
        check_output(a_file / "sub", overwrite=False)
    with pytest.raises(OutputExistsError, match="is a file, not a folder"):
        run.save(a_file / "sub" / "deeper")


def test_failure_mid_save_keeps_old_folder_and_leaves_no_partial(tmp_path, run, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "token_similarity.csv").write_text("old")
    (out / "run.json").write_text("{}")
    calls = []
    original = results_module.Result._write_files

    def failing_save(self, folder, label):
        calls.append(self.name)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return original(self, folder, label)

    monkeypatch.setattr(results_module.Result, "_write_files", failing_save)
    with pytest.raises(RuntimeError, match="disk full"):
        run.save(out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["run.json", "token_similarity.csv"]
    assert _siblings(out) == []
    calls.clear()
    with pytest.raises(RuntimeError):
        run.save(tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists()
    assert _siblings(out) == []


def test_a_file_in_the_way_is_refused(tmp_path, run):
    (tmp_path / "out").write_text("x")
    with pytest.raises(OutputExistsError, match="not a folder"):
        run.save(tmp_path / "out", overwrite=True)


def test_a_saved_run_folder_gets_the_umask_permissions(tmp_path, run):
    import os

    previous = os.umask(0o022)
    try:
        out = run.save(tmp_path / "out")
    finally:
        os.umask(previous)
    assert out.stat().st_mode & 0o777 == 0o755


def test_a_saved_checkpoint_file_gets_the_umask_permissions(tmp_path):
    """Checkpoints go through a private temp file (mode 600); colleagues can read the file it becomes."""
    import timm

    from vitprobe.models import ArchSpec
    from vitprobe.models.own_format import save_encoder

    model = timm.models.vision_transformer.VisionTransformer(img_size=32, patch_size=8, embed_dim=32, depth=1,
                                                             num_heads=2, num_classes=0)
    previous = os.umask(0o022)
    try:
        path = save_encoder(tmp_path / "enc.safetensors", model,
                            ArchSpec(patch_size=8, embed_dim=32, depth=1, num_heads=2, img_size=32), {})
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o644


def test_what_a_killed_process_left_is_named_and_kept(tmp_path, run):
    finished = subprocess.Popen(["true"])
    finished.wait()  # its pid names a process that no longer runs
    host = socket.gethostname()
    out = tmp_path / "out"
    dead = [tmp_path / f".out.partial-{host}+{finished.pid}+abc", tmp_path / f".out.old-{host}+{finished.pid}+def"]
    live = tmp_path / f".out.partial-{host}+{os.getpid()}+ghi"
    elsewhere = tmp_path / f".out.partial-otherhost+{finished.pid}+jkl"  # another machine's, on shared storage
    for folder in (*dead, live, elsewhere):
        folder.mkdir()
        (folder / "half.csv").write_text("x")
    dead_file = tmp_path / f".out.tmp-{host}+{finished.pid}+mno"
    dead_file.write_text("x")
    with pytest.warns(UserWarning, match="left by an interrupted run of out") as caught:
        run.save(out)
    named = str(caught[0].message)
    assert all(p.name in named for p in (*dead, dead_file)) and live.name not in named and elsewhere.name not in named
    assert _siblings(out) == sorted(p.name for p in (*dead, dead_file, live, elsewhere))  # nothing deleted
    assert (out / "run.json").is_file() and "(the .old one holds the previous output)" in named
    for folder in dead[1:]:  # no .old folder left: the note about one is not made
        shutil.rmtree(folder)
    with pytest.warns(UserWarning, match="left by an interrupted run of out") as caught:
        run.save(out, overwrite=True)
    assert ".old" not in str(caught[0].message)


def test_a_folder_this_process_cannot_write_in_is_refused_before_any_work(tmp_path, run, monkeypatch, capsys):
    """(Permissions are simulated: the tests may run as root, whom os.access lets write anywhere.)"""
    from vitprobe.cli import main

    locked = tmp_path / "locked"
    (locked / "existing").mkdir(parents=True)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if os.fspath(path).startswith(str(locked))
                        else real_access(path, mode, **kw))
    for out in (locked / "new", locked / "existing", locked / "new" / "deeper"):
        with pytest.raises(OutputExistsError, match=f"cannot write in {locked}"):
            check_output(out, overwrite=False)
    assert not (locked / "new").exists()
    with pytest.raises(OutputExistsError, match="cannot write in"):
        run.save(locked / "new")
    missing_checkpoint = tmp_path / "not-read.pth"  # the output is refused before the checkpoint is read
    for argv in (["analyze", "--checkpoint", str(missing_checkpoint), "--data", "synthetic:4"],
                 ["export", "--checkpoint", str(missing_checkpoint), "--format", "dino"],
                 ["compare", str(tmp_path / "run-a"), str(tmp_path / "run-b")],
                 ["reproduce", "cl_vs_mim", "--quick"],
                 ["train", "--method", "mae", "--preset", "tiny", "--data", "synthetic:8", "--epochs", "1"]):
        assert main([*argv, "--out", str(locked / "new")]) == 2, argv
        err = capsys.readouterr().err
        assert "cannot write in" in err and err.count("\n") == 1 and "Traceback" not in err, (argv, err)
        if sys.platform.startswith("linux"):  # nothing can be made in /proc, though root "may" write there
            assert main([*argv, "--out", "/proc/vitprobe-out"]) == 2, argv
            assert "cannot write in /proc (" in capsys.readouterr().err, argv


def test_overwrite_takes_back_a_custom_analysis_that_run_json_lists(tmp_path, run):
    """A custom analysis of an earlier session (not registered now) is vitprobe's own output
    where the folder's run.json lists it; a file that no run.json lists is still the user's."""
    import pandas as pd

    from vitprobe.results import Result

    table = pd.DataFrame({"metric": ["mass"] * 2, "layer": [1, 2], "value": [0.5, 0.25], "std": [0.1, 0.1], "n": [4, 4]})
    custom = Run({**{name: run[name] for name in run}, "cell_mass": Result("cell_mass", table, {"analysis": "cell_mass"})},
                 label="r")
    out = tmp_path / "out"
    custom.save(out / "a")
    (out / "runs.json").write_text("[]")
    (out / "cell_mass.csv").write_text("comparison table")  # named by a sub-folder's run.json
    run.save(out, overwrite=True)
    assert not (out / "a").exists() and not (out / "cell_mass.csv").exists()
    custom.save(out / "b")
    (out / "b" / "other_mass.csv").write_text("mine")
    with pytest.raises(OutputExistsError, match=r"did not write \(other_mass.csv\)"):
        run.save(out / "b", overwrite=True)


@pytest.mark.parametrize("out", [".", "", ".."])
def test_the_working_folder_or_one_holding_it_is_refused_before_any_work(tmp_path, run, monkeypatch, out):
    """Written beside its path and renamed into place, an output cannot be the folder one works in."""
    here = tmp_path / "work"
    here.mkdir()
    monkeypatch.chdir(here)
    for overwrite in (False, True):
        with pytest.raises(OutputExistsError, match="is the folder you are working in.*name a folder below it"):
            run.save(out, overwrite=overwrite)
    assert list(here.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["work"]
    run.save("results")  # a folder below it is fine
    assert (here / "results" / "run.json").is_file()


def test_compare_never_writes_over_a_run_it_compares(tmp_path, run):
    from vitprobe.results import compare

    run.save(tmp_path / "an" / "a")
    Run(dict(run), label="b").save(tmp_path / "an" / "b")
    before = sorted(p.name for p in (tmp_path / "an" / "a").iterdir())
    for out in (tmp_path / "an" / "a", tmp_path / "an"):
        with pytest.raises(OutputExistsError, match="holds the run .* being compared"):
            compare([tmp_path / "an" / "a", tmp_path / "an" / "b"], out, overwrite=True)
    with pytest.raises(OutputExistsError, match="is inside the run .* being compared"):
        compare([tmp_path / "an" / "a", tmp_path / "an" / "b"], tmp_path / "an" / "a" / "cmp")
    assert sorted(p.name for p in (tmp_path / "an" / "a").iterdir()) == before
    compare([tmp_path / "an" / "a", tmp_path / "an" / "b"], tmp_path / "an" / "cmp")
    assert (tmp_path / "an" / "cmp" / "runs.json").is_file()


def test_compare_of_results_rather_than_runs_says_how_to_wrap_them(tmp_path, run):
    from vitprobe.errors import ConfigError
    from vitprobe.results import compare

    result = next(iter(run.values()))
    with pytest.raises(ConfigError, match=r"compare takes runs, and Result\(.*\) is one result; wrap it: Run\(\[result\]"):
        compare([result, result], tmp_path / "cmp")
    with pytest.raises(ConfigError, match="compare takes runs or run folders, got a int"):
        compare([run, 3], tmp_path / "cmp")
    assert not (tmp_path / "cmp").exists()


def test_a_run_and_the_folder_it_was_saved_to_are_one_run(tmp_path, run):
    """compare([run, its saved folder]) compared a run with itself as two runs."""
    from vitprobe.errors import ConfigError
    from vitprobe.results import compare

    run.save(tmp_path / "saved")
    assert run.folder == tmp_path / "saved"
    with pytest.raises(ConfigError, match=r"compare: run folder .*saved is given twice"):
        compare([run, tmp_path / "saved"], tmp_path / "cmp")
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(ConfigError, match=r"compare: run folder .*saved is given twice"):  # one folder, two paths
        compare([tmp_path / "saved", tmp_path / "elsewhere" / ".." / "saved"], tmp_path / "cmp")


def test_a_folder_filled_while_the_output_was_written_is_not_replaced(tmp_path):
    from vitprobe.output_paths import atomic_output

    out = tmp_path / "out"
    with pytest.raises(OutputExistsError):
        with atomic_output(out) as tmp:
            (tmp / "run.json").write_text("{}")
            out.mkdir()
            (out / "mine.txt").write_text("user")  # another process wrote here meanwhile
    assert (out / "mine.txt").read_text() == "user"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp sibling left


def test_a_file_that_fails_part_way_leaves_the_previous_one_whole(tmp_path):
    """Tables, protocols and run.json go through a temp name: a write stopped part-way (here by
    text that cannot be encoded after the first bytes) never truncates the file it replaces."""
    from vitprobe.results import _write_text

    path = tmp_path / "run.json"
    _write_text(path, "old\n")
    with pytest.raises(UnicodeEncodeError):
        _write_text(path, "new" * 10000 + "\ud800")
    assert path.read_text(encoding="utf-8") == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]  # nor leaves its temp file


def test_one_atomic_writer_keeps_the_suffix_the_mode_and_fsyncs_only_when_durable(tmp_path, monkeypatch):
    """Every file vitprobe writes goes through write_atomically: a writer that appends a missing
    suffix (numpy.savez) still writes the named file; the file gets the umask mode; durable
    writes fsync the file before the rename and its folder after it."""
    import numpy as np

    import vitprobe.output_paths as output_paths

    synced = []
    monkeypatch.setattr(output_paths, "fsync_path", lambda p: synced.append(p))
    path = tmp_path / "arrays.npz"
    output_paths.write_atomically(path, lambda tmp: np.savez_compressed(tmp, x=np.arange(3)))
    assert [p.name for p in tmp_path.iterdir()] == ["arrays.npz"] and synced == []
    assert np.load(path)["x"].tolist() == [0, 1, 2]
    mask = os.umask(0o027)
    os.umask(mask)
    assert (path.stat().st_mode & 0o777) == 0o666 & ~mask
    marker = tmp_path / "COMPLETE"
    output_paths.write_atomically(marker, lambda tmp: tmp.write_bytes(b"ok\n"), durable=True)
    assert marker.read_bytes() == b"ok\n"
    assert [p.parent for p in synced] == [tmp_path, tmp_path.parent] and synced[1] == tmp_path
    assert synced[0].name.startswith(".COMPLETE.tmp-")  # the temp file, before its rename


_LIMITED = """
import resource, sys
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), resource.RLIM_INFINITY))
from vitprobe.cli import main
sys.exit(main(sys.argv[2:]))
"""


def _with_file_size_limit(limit: int, args: list[str], cwd) -> subprocess.CompletedProcess:
    """``vitprobe <args>`` in a process whose files may not grow past ``limit`` bytes: the file
    system's real failure (EFBIG; Python ignores SIGXFSZ), as a full disk would give."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1", "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-c", _LIMITED, str(limit), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def _one_line_error(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    return done.stderr.strip().splitlines()[-1]


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin", reason="RLIMIT_FSIZE on Linux")
def test_a_file_system_that_refuses_a_write_gives_one_line_and_leaves_nothing_half_written(tmp_path):
    """Where the disk refuses a write (here a file size limit; ENOSPC alike): analyze, export and
    train each end in one line naming the output and the reason, with no temp file left and an
    existing output as it was. safetensors and torch.save wrap the OSError in errors of their
    own; they are recognised."""
    import torch

    from vitprobe.models.architecture import ArchSpec, build_model
    from vitprobe.models.own_format import save_encoder

    arch = ArchSpec(family="vit", patch_size=8, embed_dim=32, depth=2, num_heads=2, img_size=32)
    torch.manual_seed(0)
    checkpoint = save_encoder(tmp_path / "tiny.safetensors", build_model(arch), arch, {})
    analyze = ["analyze", "--checkpoint", str(checkpoint), "--data", "synthetic:16", "--analyses", "attention_nmi",
               "--out", "a"]
    old = tmp_path / "a"
    old.mkdir()
    (old / "run.json").write_text("{}")
    line = _one_line_error(_with_file_size_limit(4000, [*analyze, "--overwrite"], tmp_path))  # a figure is larger
    assert line == (f"vitprobe: error: cannot write {os.path.join('a')} (File too large); the folder there is left "
                    "as it was; check its folder, or choose another --out")
    assert [p.name for p in old.iterdir()] == ["run.json"]
    line = _one_line_error(_with_file_size_limit(4000, ["export", "--checkpoint", str(checkpoint), "--format", "mae",
                                                       "--out", "e.pth"], tmp_path))
    assert line == "vitprobe: error: cannot write e.pth (File too large); check its folder, or choose another --out"
    line = _one_line_error(_with_file_size_limit(60000, ["train", "--method", "mae", "--data", "synthetic:16",
                                                        "--epochs", "1", "--batch-size", "8", "--out", "t"], tmp_path))
    assert line == ("vitprobe: error: could not write the checkpoint in t (File too large); no checkpoint was "
                    "written there yet: check its folder, then rerun the same command")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "t", "tiny.safetensors"]
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == [".lock", "config.json", "log.csv"]


def test_a_ctrl_c_while_handling_a_write_error_stays_a_ctrl_c(tmp_path):
    """Only errors become OutputWriteError: a KeyboardInterrupt raised while an OSError was being
    handled (its context) still stops the command as a Ctrl-C, leaving no temp file."""
    from vitprobe.errors import OutputWriteError
    from vitprobe.output_paths import write_atomically

    def interrupted(tmp):
        try:
            raise OSError(28, os.strerror(28))
        except OSError:
            raise KeyboardInterrupt from None

    def refused(tmp):
        try:
            raise OSError(28, os.strerror(28))
        except OSError:
            raise RuntimeError("iostream error")  # as torch.save reports it, the OSError its context

    with pytest.raises(KeyboardInterrupt):
        write_atomically(tmp_path / "x.json", interrupted)
    with pytest.raises(OutputWriteError, match=r"x.json \(No space left on device\); free some space on its disk"):
        write_atomically(tmp_path / "x.json", refused)
    assert list(tmp_path.iterdir()) == []

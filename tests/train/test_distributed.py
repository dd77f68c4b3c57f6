"""Two CPU processes (torchrun, gloo) with batch b equal one process with batch 2b."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
from test_engine import run_toy, toy_config  # noqa: E402

from vitprobe.models.architecture import build_model  # noqa: E402
from vitprobe.train.objectives import list_objectives  # noqa: E402

SCRIPT = """
import sys
import torch
import torch.distributed as dist
sys.path.insert(0, {tests!r})
from test_engine import run_toy
dist.init_process_group("gloo")  # the caller's own group: train() must leave it as it was
run_toy(__import__("pathlib").Path({out!r}), epochs=2, batch_size=2)
total = torch.ones(1)
dist.all_reduce(total)
assert total.item() == 2, total
dist.destroy_process_group()
"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.distributed
def test_two_processes_match_one_process_with_the_global_batch(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(tests=str(Path(__file__).parent), out=str(tmp_path / "ddp")))
    (tmp_path / "tmp").mkdir()  # torchrun's log folders land here, not in /tmp
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path / "tmp")}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--master_addr", "127.0.0.1", "--master_port", str(free_port()), str(script)],
        env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "find_unused_parameters" not in proc.stderr  # every parameter is used: DDP does not search
    run_toy(tmp_path / "single", epochs=2, batch_size=4)

    ddp, single = load_file(tmp_path / "ddp" / "final.safetensors"), \
        load_file(tmp_path / "single" / "final.safetensors")
    assert ddp.keys() == single.keys()
    for k in ddp:
        assert torch.allclose(ddp[k], single[k], rtol=1e-4, atol=1e-6), k
    init = build_model(toy_config(tmp_path).arch_spec())
    moved = (ddp["blocks.0.mlp.fc1.weight"] - init.state_dict()["blocks.0.mlp.fc1.weight"]).abs().max()
    assert moved > 1e-4  # the runs trained, so agreement is not trivial
    # Rank 0 alone wrote the log: one row per global step (16 images / (2 x 2) x 2 epochs), whose
    # loss is the mean over the processes' halves of the batch: the single process's loss.
    assert (tmp_path / "ddp" / "log.csv").read_text(encoding="utf-8").count("\n") == 1 + 8
    logs = [pd.read_csv(tmp_path / run / "log.csv") for run in ("ddp", "single")]
    np.testing.assert_allclose(logs[0]["loss"], logs[1]["loss"], rtol=1e-4)
    state = torch.load(tmp_path / "ddp" / "checkpoint.train_state.pt", weights_only=True)
    assert state["world_size"] == 2 and state["step"] == 8
    from vitprobe.models import load_model
    from vitprobe.models.loading import training_summary

    training = load_model(tmp_path / "ddp" / "final.safetensors").vitprobe_info["report"]["training"]
    assert "batch_size 2 per process x 2 processes" in training_summary(training)  # the encoder says how it trained


DATA_PARALLEL_CASES = [[m] for m in list_objectives() if m != "hybrid"] + [
    ["hybrid", "--lambda", lam] for lam in ("0", "0.5", "1")]


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.parametrize("method", DATA_PARALLEL_CASES, ids=" ".join)
def test_every_objective_trains_data_parallel(tmp_path, method):
    """DDP searches for parameters without a gradient only where an objective says it leaves
    some (a hybrid at lambda 0 or 1 skips a branch); were one left unused elsewhere, the second
    step would fail ("Expected to have finished reduction ...")."""
    (tmp_path / "tmp").mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path / "tmp")}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
         "--master_port", str(free_port()), "-m", "vitprobe", "train", "--method", *method,
         "--preset", "tiny", "--data", "synthetic:32", "--batch-size", "4", "--epochs", "1",
         "--out", str(tmp_path / "run"), "--no-progress"],
        env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "run" / "final.safetensors").exists()
    if method[0] in ("mae", "simmim"):  # recon_loss is the loss: both averaged over the processes
        import csv

        with open(tmp_path / "run" / "log.csv", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        assert rows and all(float(r["recon_loss"]) == pytest.approx(float(r["loss"]), rel=1e-6) for r in rows)


@pytest.mark.slow
@pytest.mark.distributed
def test_an_error_rank_zero_alone_meets_stops_every_rank_with_one_line(tmp_path):
    """Rank 0 alone takes the folder's lock; when another process holds it, every rank stops
    with exit 2 and one line (rank 1 used to fail in the next collective, with a traceback)."""
    from vitprobe.train.run_lock import RunLock

    out = tmp_path / "run"
    out.mkdir()
    held = RunLock()
    held.acquire(out)
    (tmp_path / "tmp").mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path / "tmp")}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
             "--master_port", str(free_port()), "-m", "vitprobe", "train", "--method", "mae", "--data",
             "synthetic:16", "--epochs", "1", "--batch-size", "4", "--out", str(out), "--no-progress"],
            env=env, capture_output=True, text=True, timeout=300)
    finally:
        held.release()
    assert proc.returncode != 0
    assert proc.stderr.count("vitprobe: error:") == 1 and "another process" in proc.stderr, proc.stderr[-3000:]
    assert "[rank1]" not in proc.stderr and "exitcode  : 2" in proc.stderr, proc.stderr[-3000:]
    assert [p.name for p in out.iterdir()] == [".lock"]


# ---------------------------------------------------------------- one process, the group faked
def test_launcher_runs_on_one_node_where_the_node_size_does_not_divide_the_world(monkeypatch):
    from vitprobe.distributed import launcher

    assert launcher(1) == "vitprobe"
    for per_node in ("3", "0", "8", "16"):
        monkeypatch.setenv("LOCAL_WORLD_SIZE", per_node)
        assert launcher(8) == "torchrun --nproc_per_node 8 -m vitprobe", per_node


def test_to_device_moves_every_tensor_of_a_nested_batch_and_keeps_its_containers():
    from vitprobe.distributed import to_device

    batch = {"image": torch.zeros(2, 3), "labels": {"shape": torch.tensor([0, 1])},
             "pair": (torch.ones(1), [torch.ones(1), "x"]), "n": 2}
    moved = to_device(batch, torch.device("meta"))
    assert moved["image"].is_meta and moved["labels"]["shape"].is_meta
    assert type(moved["pair"]) is tuple and type(moved["pair"][1]) is list
    assert moved["pair"][0].is_meta and moved["pair"][1][0].is_meta and moved["pair"][1][1] == "x" and moved["n"] == 2


def test_global_means_of_one_process_are_its_loss_and_metrics_by_name():
    from vitprobe.distributed import DistEnv, global_means

    loss, metrics = global_means(torch.tensor(2.5), {"b": 1.0, "a": np.float32(0.25)}, DistEnv(0, 1, torch.device("cpu")))
    assert type(loss) is float and loss == 2.5 and metrics == {"a": 0.25, "b": 1.0}


def test_an_error_in_reading_this_ranks_batches_is_marked_as_its_own():
    from vitprobe.distributed import shard_batches
    from vitprobe.errors import DataError

    def batches():
        yield 1
        raise DataError("cannot read 7.jpg")

    got = []
    with pytest.raises(DataError) as err:
        for batch in shard_batches(batches()):
            got.append(batch)
    assert got == [1] and err.value.own_shard is True


def test_setup_joins_torchruns_group_on_the_local_gpu_and_teardown_ends_only_the_group_it_made(monkeypatch):
    import torch.distributed as dist

    from vitprobe.distributed import DistEnv, setup, teardown

    calls, group = [], []

    def init_process_group(backend: str, init_method: str) -> None:
        calls.append(("init", backend, init_method))
        group.append(True)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: calls.append(("set_device", device)))
    monkeypatch.setattr(dist, "is_initialized", lambda: bool(group))
    monkeypatch.setattr(dist, "init_process_group", init_process_group)
    monkeypatch.setattr(dist, "destroy_process_group", lambda: calls.append(("destroy",)))
    monkeypatch.setattr(dist, "get_rank", lambda: 3)
    monkeypatch.setattr(dist, "get_world_size", lambda: 4)
    for name, value in (("WORLD_SIZE", "4"), ("RANK", "3"), ("LOCAL_RANK", "1")):  # the second node's second process
        monkeypatch.setenv(name, value)
    on_cpu = setup("cpu")
    assert on_cpu == DistEnv(rank=3, world_size=4, device=torch.device("cpu"), owns_group=True)
    assert calls == [("init", "gloo", "env://")]
    group.clear(), calls.clear()
    env = setup("auto")
    assert env == DistEnv(rank=3, world_size=4, device=torch.device("cuda", 1), owns_group=True)
    assert calls == [("set_device", torch.device("cuda", 1)), ("init", "nccl", "env://")]
    calls.clear()
    joined = setup("cpu")  # the caller's own group: joined, not made
    assert not joined.owns_group and calls == []
    teardown(joined)
    assert calls == []
    teardown(env)
    assert calls == [("destroy",)]

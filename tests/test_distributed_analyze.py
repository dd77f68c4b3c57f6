"""Sharded analysis under torchrun: two CPU processes on gloo give the tables of one process.

Each test starts ``torchrun --nproc-per-node 2`` on a free 127.0.0.1 port (OMP_NUM_THREADS=1)
over a tiny ViT and 24 synthetic images, and compares every table with a single-process run
of the same inputs: statistics allclose (float64 sums added in another order), probe and
k-NN accuracies identical. Run as a script, this file is the torchrun worker of the API test.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

DATA = "synthetic:24"
BATCH = 8
EXACT_METRICS = ("linear_probe_top1", "knn_top1")

pytestmark = [pytest.mark.distributed, pytest.mark.slow]


def tiny_checkpoint(path: Path) -> Path:
    """A randomly initialised tiny ViT (32 px, patch 8, width 32, depth 2, 2 heads) saved in
    vitprobe's own format."""
    from vitprobe.models.architecture import ArchSpec, build_model
    from vitprobe.models.own_format import save_encoder

    arch = ArchSpec(family="vit", patch_size=8, embed_dim=32, depth=2, num_heads=2, img_size=32)
    torch.manual_seed(0)
    return save_encoder(path, build_model(arch), arch, {})


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``torchrun --nproc-per-node 2`` of ``args`` on gloo, one thread per process."""
    (cwd / "tmp").mkdir(exist_ok=True)  # torchrun's log folders land here, not in /tmp
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "TMPDIR": str(cwd / "tmp")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
           "--master-addr", "127.0.0.1", "--master-port", str(free_port()), *args]
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"torchrun failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def tables(folder: Path) -> dict[str, pd.DataFrame]:
    """Every ``<analysis>.csv`` of a saved run folder."""
    found = {p.stem: pd.read_csv(p) for p in sorted(folder.glob("*.csv"))}
    assert found, f"no tables in {folder}"
    return found


def assert_same_tables(single: dict[str, pd.DataFrame], sharded: dict[str, pd.DataFrame]) -> None:
    assert sorted(single) == sorted(sharded)
    for name, left in single.items():
        right = sharded[name]
        assert list(left.columns) == list(right.columns) and len(left) == len(right), name
        for column in left.columns:
            a, b = left[column].to_numpy(), right[column].to_numpy()
            if column == "value" and "metric" in left and left["metric"].isin(EXACT_METRICS).all():
                np.testing.assert_array_equal(a, b, err_msg=f"{name}.{column}")
            elif np.issubdtype(a.dtype, np.floating):
                np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9, equal_nan=True,
                                           err_msg=f"{name}.{column}")
            else:
                np.testing.assert_array_equal(a, b, err_msg=f"{name}.{column}")


def protocol_world_size(folder: Path) -> int:
    return json.loads(next(folder.glob("attention_distance.json")).read_text(encoding="utf-8"))["world_size"]


def _worker(checkpoint: str, out: str) -> None:
    """torchrun worker: join the gloo group, analyse this rank's shard, rank 0 saves."""
    import torch.distributed as dist

    from vitprobe.analysis import analyze

    dist.init_process_group("gloo")
    try:
        analyze(checkpoint, DATA, batch_size=BATCH, out=out, progress=False)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_sharded_api_run_equals_single_process(tmp_path):
    from vitprobe.analysis import analyze

    ckpt = tiny_checkpoint(tmp_path / "tiny.safetensors")
    analyze(ckpt, DATA, batch_size=BATCH, out=tmp_path / "single", progress=False)
    torchrun([__file__, str(ckpt), str(tmp_path / "sharded")], cwd=tmp_path)
    assert protocol_world_size(tmp_path / "sharded") == 2
    assert_same_tables(tables(tmp_path / "single"), tables(tmp_path / "sharded"))


def test_torchrun_cli_shards_and_equals_single_process(tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "tiny.safetensors")
    common = ["--checkpoint", str(ckpt), "--data", DATA, "--batch-size", str(BATCH), "--no-progress"]
    single = subprocess.run([sys.executable, "-m", "vitprobe", "analyze", *common, "--out",
                             str(tmp_path / "single")], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert single.returncode == 0, single.stderr[-3000:]
    torchrun(["-m", "vitprobe", "analyze", *common, "--out", str(tmp_path / "sharded")], cwd=tmp_path)
    sharded = tmp_path / "sharded" / "tiny"
    assert protocol_world_size(sharded) == 2, "each torchrun process analysed the whole dataset alone"
    assert_same_tables(tables(tmp_path / "single" / "tiny"), tables(sharded))


if __name__ == "__main__":
    _worker(*sys.argv[1:3])

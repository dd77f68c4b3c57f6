"""check_images under torch.distributed: two gloo processes split the file checks between them
and both end with the verdicts of one process; ranks that list different files fail alike."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch.distributed as dist
import torch.multiprocessing as mp

from data_trees import write_image_folder

pytestmark = pytest.mark.distributed
WORLD = 2


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank(rank: int, port: int, root: str, out: str, reverse_on_rank_one: bool) -> None:
    """Join the group; check every file of ``root`` (reversed on rank 1 when asked), counting
    the files this process opened itself; write what came back to ``out/<rank>.json``."""
    from vitprobe.data import images

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    opened: list[str] = []
    check = images.check_image

    def counting(path: Path) -> str | None:
        opened.append(path.name)
        return check(path)

    images.check_image = counting
    paths = sorted(Path(root).rglob("*.*"))
    if reverse_on_rank_one and rank == 1:
        paths.reverse()
    try:
        result = {"verdicts": images.check_images(paths), "opened": opened}
    except Exception as error:  # noqa: BLE001 - what each rank raised is the result
        result = {"error": f"{type(error).__name__}: {error}"}
    finally:
        dist.destroy_process_group()
    Path(out, f"{rank}.json").write_text(json.dumps(result), encoding="utf-8")


def _run_ranks(tmp_path: Path, reverse_on_rank_one: bool) -> list[dict]:
    root = write_image_folder(tmp_path)
    for name in ("a_bad.png", "b_bad.png"):  # unreadable files on both ranks' shares, not only rank 0's
        (root / "cats" / name).write_bytes(b"not a png")
    out = tmp_path / "out"
    out.mkdir()
    mp.spawn(_rank, args=(_free_port(), str(root), str(out), reverse_on_rank_one), nprocs=WORLD)
    return [json.loads((out / f"{rank}.json").read_text(encoding="utf-8")) for rank in range(WORLD)]


def test_ranks_share_the_checks_and_agree_with_one_process(tmp_path):
    from vitprobe.data.images import check_image

    ranks = _run_ranks(tmp_path, reverse_on_rank_one=False)
    paths = sorted((tmp_path / "images").rglob("*.*"))
    alone = [check_image(path) for path in paths]
    assert sum(reason is not None for reason in alone) >= 3  # the tree's bad files are found
    assert {i % WORLD for i, reason in enumerate(alone) if reason is not None} == {0, 1}  # by both ranks
    for result in ranks:
        assert result.get("verdicts") == alone, result
    opened = [result["opened"] for result in ranks]
    assert sorted(opened[0] + opened[1]) == sorted(p.name for p in paths)  # each file once in all
    assert abs(len(opened[0]) - len(opened[1])) <= 1


def test_ranks_that_list_different_files_fail_alike(tmp_path):
    ranks = _run_ranks(tmp_path, reverse_on_rank_one=True)
    for result in ranks:
        assert result.get("error", "").startswith("DataError: the 2 processes list different image files"), result
        assert "give every rank the same files" in result["error"]

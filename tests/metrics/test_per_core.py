"""Per-image metrics on one single-threaded worker per core: same values, caller untouched."""

from __future__ import annotations

import os
import threading
from types import SimpleNamespace

import pytest
import torch

from vitprobe.metrics import attention_distance, attention_nmi_and_diversity, token_covariance_log_spectrum
from vitprobe.metrics import _per_core
from vitprobe.metrics._per_core import map_image_chunks, map_per_core


@pytest.fixture
def threads():
    """Set torch's intra-op threads for one test and restore them after."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def test_workers_run_single_threaded_in_order_and_leave_the_caller_alone(threads):
    threads(3)
    seen = map_per_core(lambda i: (i, torch.get_num_threads()), list(range(7)))
    assert seen == [(i, 1) for i in range(7)]
    assert torch.get_num_threads() == 3


def test_chunk_count_rounds_up_to_the_workers_and_keeps_every_image(threads):
    threads(2)
    batch = torch.arange(5 * 4, dtype=torch.float32).reshape(5, 4)
    sizes = []

    def record(chunk: torch.Tensor) -> torch.Tensor:
        sizes.append(chunk.shape[0])
        return chunk * 2

    torch.testing.assert_close(map_image_chunks(record, batch, elements_per_chunk=8), batch * 2)
    assert sorted(sizes) == [1, 1, 1, 2]  # ceil(20 / 8) = 3 chunks, rounded up to 4 for 2 workers
    assert map_image_chunks(record, batch[:0], 8).shape == (0, 4)
    sizes.clear()  # one element a chunk would make 20 chunks: never more chunks than images, none empty
    torch.testing.assert_close(map_image_chunks(record, batch, elements_per_chunk=1), batch * 2)
    assert sizes == [1] * 5


def _metrics(attn: torch.Tensor, tokens: torch.Tensor) -> list[torch.Tensor]:
    nmi, diversity = attention_nmi_and_diversity(attn)
    return [attention_distance(attn, 4), nmi, diversity, token_covariance_log_spectrum(tokens)]


def test_values_do_not_depend_on_the_number_of_workers(threads):
    g = torch.Generator().manual_seed(0)
    attn = (torch.randn(9, 3, 17, 17, generator=g) * 2).softmax(-1)
    tokens = torch.randn(9, 17, 12, generator=g)
    results = []
    for count in (1, 2, 3):
        threads(count)
        results.append(_metrics(attn, tokens))
    for other in results[1:]:
        for got, want in zip(other, results[0]):
            torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_one_item_or_one_thread_runs_inline_and_a_pool_has_as_many_workers_as_it_is_given_items(threads, monkeypatch):
    monkeypatch.setattr(_per_core, "_POOLS", {})
    here = threading.current_thread().name
    threads(3)
    assert map_per_core(lambda i: threading.current_thread().name, [0]) == [here]
    threads(1)
    assert map_per_core(lambda i: threading.current_thread().name, [0, 1, 2]) == [here] * 3
    assert _per_core._POOLS == {}
    threads(3)
    assert map_per_core(lambda i: i * 10, [1, 2]) == [10, 20]  # two items: two workers, not three
    assert list(_per_core._POOLS) == [(os.getpid(), 2)] and _per_core._POOLS[(os.getpid(), 2)]._max_workers == 2
    for pool in _per_core._POOLS.values():
        pool.shutdown()


def test_a_forked_process_gets_a_pool_of_its_own_and_each_size_its_own(monkeypatch):
    """A forked child's copy of its parent's pool has no threads: the pid is part of the key."""
    monkeypatch.setattr(_per_core, "_POOLS", {})
    parent = _per_core._pool(2)
    assert _per_core._pool(2) is parent and _per_core._pool(3) is not parent
    monkeypatch.setattr(_per_core, "os", SimpleNamespace(getpid=lambda: -1))  # as in a forked child
    child = _per_core._pool(2)
    assert child is not parent and child._max_workers == 2
    for pool in _per_core._POOLS.values():
        pool.shutdown()


def test_a_batch_off_the_cpu_goes_whole_to_one_call(threads):
    threads(2)
    calls = []

    def record(chunk: torch.Tensor) -> torch.Tensor:
        calls.append(chunk.shape[0])
        return chunk * 2

    on_meta = torch.empty(6, 4, device="meta")
    assert map_image_chunks(record, on_meta, elements_per_chunk=4).shape == (6, 4)
    assert calls == [6]

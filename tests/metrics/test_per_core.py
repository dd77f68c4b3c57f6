"""Per-image metrics on one single-threaded worker per core: same values, caller untouched."""

from __future__ import annotations

import pytest
import torch

from vitprobe.metrics import attention_distance, attention_nmi_and_diversity, token_covariance_log_spectrum
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

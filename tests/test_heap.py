"""Freed memory is kept for reuse once a capture has run (glibc), and handed back on request."""

from __future__ import annotations

import resource

import pytest
import torch

from vitprobe import heap
from vitprobe.capture import capture, token_sites
from vitprobe.models.architecture import ArchSpec, build_model


RETAIN = [("mallopt", heap.M_MMAP_THRESHOLD, heap.RETAINED_MMAP_THRESHOLD),
          ("mallopt", heap.M_TRIM_THRESHOLD, heap.RETAINED_TRIM_THRESHOLD)]


def test_thresholds_are_raised_once_per_process(malloc_calls) -> None:
    assert heap.retain_freed_memory()
    assert heap.retain_freed_memory()
    assert malloc_calls == RETAIN


def test_release_trims_and_retention_stays(malloc_calls) -> None:
    heap.retain_freed_memory()
    heap.release_freed_memory()
    heap.retain_freed_memory()
    assert malloc_calls == RETAIN + [("malloc_trim", 0)]


@pytest.mark.parametrize("name, value", [("MALLOC_TRIM_THRESHOLD_", "1000000"),
                                         ("MALLOC_MMAP_THRESHOLD_", "65536"),
                                         ("MALLOC_TOP_PAD_", "0"),
                                         ("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1000000")])
def test_the_users_own_malloc_settings_are_left_alone(malloc_calls, monkeypatch, name, value) -> None:
    monkeypatch.setenv(name, value)
    assert not heap.retain_freed_memory()
    assert malloc_calls == []


def test_tunables_of_other_parts_of_glibc_do_not_count(malloc_calls, monkeypatch) -> None:
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.cpu.hwcaps=-AVX512F")
    assert heap.retain_freed_memory()
    assert malloc_calls == RETAIN


def test_a_capture_retains(malloc_calls) -> None:
    model = build_model(ArchSpec(patch_size=8, embed_dim=16, depth=1, num_heads=2, img_size=16)).eval()
    with capture(model, token_sites(1)) as cap:
        cap.run(torch.randn(2, 3, 16, 16))
    assert malloc_calls == RETAIN


def test_without_glibc_nothing_is_done(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "_libc", None)
    monkeypatch.setattr(heap, "_retaining", False)
    assert not heap.retain_freed_memory()
    heap.release_freed_memory()


def _minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


@pytest.mark.skipif(heap._libc is None, reason="malloc is not glibc's")
def test_memory_freed_inside_is_reused_without_page_faults() -> None:
    """A batch-like cycle (allocate 8 x 16 MiB, write them, free them all) repeated while
    retaining: once the heap holds the cycle's memory, a cycle faults on under a tenth of its
    pages."""
    count, elements = 8, 4 << 20  # 16 MiB of float32 each
    pages = count * elements * 4 // resource.getpagesize()
    faults = []
    if not heap.retain_freed_memory():
        pytest.skip("the environment sets malloc's thresholds")
    heap.release_freed_memory()  # the heap starts without free memory to hand out
    for _ in range(6):
        start = _minor_faults()
        blocks = [torch.empty(elements).fill_(1.0) for _ in range(count)]
        del blocks
        faults.append(_minor_faults() - start)
    assert faults[0] > pages // 2, faults  # the first cycle did take fresh pages (the test can see them)
    assert faults[-1] < pages // 10, (faults, pages)


def test_the_thresholds_are_glibcs_own_parameter_numbers(malloc_calls) -> None:
    """mallopt's M_MMAP_THRESHOLD is -3 and M_TRIM_THRESHOLD -1 in <malloc.h>; another number
    sets another knob (-2 is M_TOP_PAD) and leaves the thresholds as they were."""
    assert heap.retain_freed_memory()
    assert malloc_calls == [("mallopt", -3, 1 << 30), ("mallopt", -1, 2**31 - 1)]


def test_a_c_library_without_glibcs_version_call_is_not_taken_for_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    class OtherLibc:
        def mallopt(self, param: int, value: int) -> int:
            return 1

        def malloc_trim(self, pad: int) -> int:
            return 1

    class Glibc(OtherLibc):
        def gnu_get_libc_version(self) -> bytes:
            return b"2.36"

    def no_symbol_table(name: object) -> None:
        raise OSError("no process-wide symbol table")

    glibc = Glibc()
    monkeypatch.setattr(heap.ctypes, "CDLL", lambda name: OtherLibc())
    assert heap._glibc() is None
    monkeypatch.setattr(heap.ctypes, "CDLL", lambda name: glibc)
    assert heap._glibc() is glibc
    monkeypatch.setattr(heap.ctypes, "CDLL", no_symbol_table)
    assert heap._glibc() is None

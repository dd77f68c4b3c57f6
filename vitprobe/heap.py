"""Freed memory kept in the process for reuse (glibc's malloc; elsewhere nothing is done).

A capture pass frees hundreds of MB at the end of every batch (each block's attention
probabilities, kept until the analyzers have read them). glibc's malloc hands such memory
back to the kernel (``sbrk``/``munmap``) once the free top of its heap passes the trim
threshold, or maps and unmaps it whole when a block is over the mmap threshold (at most
32 MiB), and the next batch takes it back page by page. On this project's 2-core VM, at
ViT-B/16 with batches of 32, that was 0.8-1.1 million minor page faults per batch and a pass
1.56x a bare forward instead of 1.34x (benchmarks/README.md). A bare timm forward frees
blocks that its next layer reuses, and faults on nothing.

:func:`retain_freed_memory` (called by :func:`vitprobe.capture.capture` and by a training
run) raises malloc's trim and mmap thresholds (``mallopt``) for the rest of the process, as
setting the environment variables ``MALLOC_TRIM_THRESHOLD_`` and ``MALLOC_MMAP_THRESHOLD_``
would: freed memory stays mapped and the next batch reuses it, as PyTorch's CUDA allocator
keeps GPU memory. The process's resident memory then stays at its high-water mark;
:func:`release_freed_memory` hands the free part back (``malloc_trim``). Where the user set
malloc's thresholds through the environment, their choice is left alone.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# Nothing under 1 GiB is mmapped (and unmapped on free); the heap's free top is trimmed only
# above 2 GiB (mallopt takes an int).
RETAINED_MMAP_THRESHOLD = 1 << 30
RETAINED_TRIM_THRESHOLD = (1 << 31) - 1
# Environment variables through which a user sets malloc's thresholds themselves (and
# GLIBC_TUNABLES holding glibc.malloc.* settings).
USER_SETTINGS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")


def _glibc() -> Any | None:
    """The C library when it is glibc (it has ``gnu_get_libc_version``, ``mallopt`` and
    ``malloc_trim``), else None."""
    try:
        libc = ctypes.CDLL(None)
    except OSError:  # Windows: no process-wide symbol table
        return None
    if not all(hasattr(libc, name) for name in ("gnu_get_libc_version", "mallopt", "malloc_trim")):
        return None
    return libc


def _user_set_malloc() -> bool:
    """Whether the environment sets malloc's thresholds (``USER_SETTINGS``, glibc.malloc tunables)."""
    return (any(name in os.environ for name in USER_SETTINGS)
            or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""))


_libc = _glibc()
_retaining = False


def retain_freed_memory() -> bool:
    """Keep memory freed from now on mapped for reuse, process-wide (idempotent). Returns
    whether this call or an earlier one set it: False without glibc or where the environment
    sets malloc's thresholds."""
    global _retaining
    if _retaining:
        return True
    if _libc is None or _user_set_malloc():
        return False
    _libc.mallopt(M_MMAP_THRESHOLD, RETAINED_MMAP_THRESHOLD)
    _libc.mallopt(M_TRIM_THRESHOLD, RETAINED_TRIM_THRESHOLD)
    _retaining = True
    return True


def release_freed_memory() -> None:
    """Hand the free memory that malloc holds back to the kernel now (``malloc_trim(0)``);
    later frees are still kept."""
    if _libc is not None:
        _libc.malloc_trim(0)

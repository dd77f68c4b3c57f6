"""Hypothesis profiles: by default every run draws the same examples (CI is reproducible);
``HYPOTHESIS_PROFILE=explore pytest tests/...`` draws new random ones on each run. A failure
that exploring finds belongs in the test's explicit cases once it is fixed.

Fixture ``malloc_calls``: a stand-in for glibc that records what vitprobe.heap asks of malloc.
"""

import os

import pytest
from hypothesis import settings

from vitprobe import heap

settings.register_profile("deterministic", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))


class RecordingLibc:
    """Stands in for glibc: records mallopt / malloc_trim calls in ``calls``."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append(("mallopt", param, value))
        return 1

    def malloc_trim(self, pad: int) -> int:
        self.calls.append(("malloc_trim", pad))
        return 1


@pytest.fixture
def malloc_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """The calls vitprobe.heap makes, in a process that has not retained freed memory yet and
    whose environment sets nothing of malloc's."""
    libc = RecordingLibc()
    monkeypatch.setattr(heap, "_libc", libc)
    monkeypatch.setattr(heap, "_retaining", False)
    for name in heap.USER_SETTINGS + ("GLIBC_TUNABLES",):
        monkeypatch.delenv(name, raising=False)
    return libc.calls

"""The held-out split is splitmix64 as published (so a run's held-out images stay the same
across versions and machines), and parameter values are brought to one form."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vitprobe.analyzers import get_analyzer
from vitprobe.analyzers._split import _splitmix64, heldout_mask
from vitprobe.errors import ConfigError

_M64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _splitmix64_reference(x: int) -> int:
    """Vigna's splitmix64 next() from state x (prng.di.unimi.it/splitmix64.c), in Python ints."""
    z = (x + _GOLDEN) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def test_the_hash_is_splitmix64_as_published():
    """Published outputs: from state 0 the first is 0xE220A8397B1DCDAF (splitmix64.c); seeded
    with 1234567 the first five are Rosetta Code's 'Pseudo-random numbers/Splitmix64' values."""
    states = [(1234567 + i * _GOLDEN) & _M64 for i in range(5)]
    with np.errstate(over="ignore"):
        got = _splitmix64(np.array([0, *states], dtype=np.uint64)).tolist()
    assert got == [0xE220A8397B1DCDAF, 6457827717110365317, 3203168211198807973, 9817491932198370423,
                   4593380528125082431, 16408922859458223821]
    assert [_splitmix64_reference(s) for s in [0, *states]] == got


@pytest.mark.parametrize("seed", [0, 3, 0x5EC7, 2**40 + 7])
@pytest.mark.parametrize("fraction", [0.2, 0.5])
def test_the_held_out_images_are_those_whose_hash_falls_below_the_fraction(seed, fraction):
    """held = u < fraction with u = top 53 bits of splitmix64(splitmix64(index) ^ seed) / 2^53."""
    index = torch.cat([torch.arange(300), torch.tensor([10**12, 2**62])])
    expected = [(_splitmix64_reference(_splitmix64_reference(i) ^ seed) >> 11) / float(1 << 53) < fraction
                for i in index.tolist()]
    assert heldout_mask(index, fraction, seed).tolist() == expected


@pytest.mark.parametrize("name, params, attribute, expected", [
    ("knn", {"split_seed": np.int64(3)}, "split_seed", 3),  # a NumPy integer (a sweep's value) is an int
    ("token_similarity", {"spectrum_seed": np.int32(7)}, "spectrum_seed", 7),
    ("attention_distance", {"layers": "0,-1"}, "layers", [0, -1]),  # parsed; bind names the range
])
def test_whole_numbers_are_brought_to_python_ints(name, params, attribute, expected) -> None:
    """What the protocol records (params()) is a Python int, as JSON and captions take it."""
    analyzer = get_analyzer(name, **params)
    value = getattr(analyzer, attribute)
    assert value == expected and type(value) is type(expected)
    assert type(analyzer.params()[attribute]) is type(expected)


def test_a_numpy_float_is_taken_for_a_float_parameter() -> None:
    """A sweep's np.float32 was refused ("T takes finite number, got np.float32(0.1)")."""
    analyzer = get_analyzer("knn", T=np.float32(0.1))
    assert type(analyzer.T) is float and analyzer.T == pytest.approx(0.1)
    with pytest.raises(ConfigError, match="T takes finite number"):
        get_analyzer("knn", T=np.float32("nan"))


def test_a_numpy_integer_seed_splits_as_the_same_python_int() -> None:
    """Built directly (not through get_analyzer), a probe keeps a NumPy split_seed as given;
    the split overflowed on it after the whole pass."""
    index = torch.arange(500)
    assert heldout_mask(index, 0.2, np.int64(3)).tolist() == heldout_mask(index, 0.2, 3).tolist()
    assert heldout_mask(index, 0.2, np.uint64(2**63 + 5)).tolist() == heldout_mask(index, 0.2, 2**63 + 5).tolist()

"""Hypothesis properties: head permutation equivariance and finiteness at the extremes."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vitprobe.metrics import (
    attention_distance,
    attention_mask,
    attention_nmi,
    fourier_delta_log_amplitude,
    head_diversity,
    token_cosine_similarity,
    token_covariance_log_spectrum,
)

FAST = settings(max_examples=25, deadline=None)


def _attention(seed: int, heads: int, side: int, sharpness: float) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    n = 1 + side * side
    return (torch.randn(2, heads, n, n, generator=gen) * sharpness).softmax(-1)


@FAST
@given(seed=st.integers(0, 10_000), heads=st.integers(2, 5), side=st.integers(2, 5))
def test_permuting_heads_permutes_outputs(seed, heads, side):
    attn = _attention(seed, heads, side, 3.0)
    perm = torch.randperm(heads, generator=torch.Generator().manual_seed(seed))
    permuted = attn[:, perm]
    torch.testing.assert_close(attention_distance(permuted, 4), attention_distance(attn, 4)[:, perm])
    torch.testing.assert_close(attention_nmi(permuted), attention_nmi(attn)[:, perm])
    torch.testing.assert_close(head_diversity(permuted), head_diversity(attn))
    cls = attn[:, :, 0, 1:]
    assert torch.equal(attention_mask(cls[:, perm]), attention_mask(cls)[:, perm])


@FAST
@given(seed=st.integers(0, 10_000), side=st.integers(2, 5), sharpness=st.sampled_from([30.0, 300.0, 3000.0]))
def test_outputs_finite_on_near_one_hot_attention(seed, side, sharpness):
    attn = _attention(seed, 3, side, sharpness)
    for value in (attention_distance(attn, 8), attention_nmi(attn), head_diversity(attn)):
        assert torch.isfinite(value).all()
    nmi = attention_nmi(attn)
    assert ((nmi >= 0) & (nmi <= 1 + 1e-5)).all()
    assert (head_diversity(attn) <= torch.log(torch.tensor(2.0)) + 1e-5).all()


@FAST
@given(seed=st.integers(0, 10_000), scale=st.sampled_from([1e-20, 1.0, 1e15, 1e30]))
def test_outputs_finite_on_huge_and_tiny_feature_scales(seed, scale):
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randn(2, 1 + 16, 6, generator=gen) * scale
    cosine = token_cosine_similarity(tokens)
    assert torch.isfinite(cosine).all() and (cosine.abs() <= 1 + 1e-5).all()
    assert torch.isfinite(fourier_delta_log_amplitude(tokens)).all()
    assert torch.isfinite(token_covariance_log_spectrum(tokens)).all()

"""Known answers for Fourier profiles, token cosine, spectra, masks, Jaccard and k-NN."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import vitprobe.metrics.knn as knn_module
from vitprobe.metrics import (
    MetricInputError,
    ShapeError,
    attention_mask,
    covariance_from_sums,
    fourier_delta_log_amplitude,
    fourier_frequencies,
    jaccard,
    jaccard_matrix,
    knn_predict,
    moment_sums,
    token_cosine_similarity,
    token_covariance_log_spectrum,
    upsample_patch_mask,
)


def _tokens_from_maps(maps: torch.Tensor, prefix: int = 1) -> torch.Tensor:
    """(B, C, h, w) maps -> (B, P + h*w, C) tokens with random prefix tokens."""
    b, c, h, w = maps.shape
    patches = maps.reshape(b, c, h * w).transpose(1, 2)
    return torch.cat([torch.randn(b, prefix, c), patches], dim=1)


@pytest.mark.parametrize("side,f", [(14, 3), (14, 5), (9, 2), (8, 1)])
def test_diagonal_cosine_wave_peaks_at_its_frequency(side, f):
    y, x = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    wave = torch.cos(2 * math.pi * f * (x + y).double() / side).float()
    maps = wave.expand(2, 6, side, side)
    delta = fourier_delta_log_amplitude(_tokens_from_maps(maps))
    assert delta.shape == (2, (side + 1) // 2)
    assert torch.all(delta[:, 0] == 0)
    assert int(delta[0].argmax()) == f
    assert delta[0, f] > delta[0, 0] + 10  # the other diagonal bins sit at log(1e-6)


def test_fourier_frequencies_are_two_k_over_h():
    torch.testing.assert_close(fourier_frequencies(14), torch.arange(7) * 2 / 14)
    assert fourier_frequencies(14)[-1] == pytest.approx(6 / 7)
    assert len(fourier_frequencies(7)) == 4


def test_fourier_log_is_taken_before_channel_mean():
    torch.manual_seed(0)
    maps = torch.randn(1, 3, 6, 6)
    log_amp = torch.log(torch.fft.fft2(maps).abs() + 1e-6)
    shifted = torch.roll(log_amp, shifts=(3, 3), dims=(2, 3)).mean(1)[0]
    diag = torch.diagonal(shifted)[3:]
    torch.testing.assert_close(fourier_delta_log_amplitude(_tokens_from_maps(maps))[0], diag - diag[0])


def test_token_cosine_matches_pairwise_mean():
    torch.manual_seed(0)
    tokens = torch.randn(3, 10, 5, dtype=torch.float64)
    units = torch.nn.functional.normalize(tokens[:, 1:], dim=-1)
    sim = units @ units.transpose(1, 2)
    n = sim.shape[1]
    expected = (sim.sum((1, 2)) - sim.diagonal(dim1=1, dim2=2).sum(1)) / (n * (n - 1))
    torch.testing.assert_close(token_cosine_similarity(tokens), expected)
    same = torch.randn(1, 1, 4).expand(2, 9, 4)
    torch.testing.assert_close(token_cosine_similarity(same), torch.ones(2))


def test_token_cosine_counts_a_zero_token_as_similar_to_nothing():
    torch.manual_seed(0)
    tokens = torch.randn(2, 8, 6, dtype=torch.float64)
    tokens[:, 3] = 0.0
    units = torch.nn.functional.normalize(tokens[:, 1:], dim=-1)  # the zero row stays 0
    sim = units @ units.transpose(1, 2)
    n = sim.shape[1]
    expected = (sim.sum((1, 2)) - sim.diagonal(dim1=1, dim2=2).sum(1)) / (n * (n - 1))
    torch.testing.assert_close(token_cosine_similarity(tokens), expected)


def test_token_cosine_of_half_precision_tokens_beyond_their_range_of_squares():
    torch.manual_seed(0)
    tokens = torch.randn(2, 10, 16) * 1e4  # finite in float16, |x|^2 far beyond float16's largest value, 65504
    for dtype in (torch.float16, torch.bfloat16):
        low = tokens.to(dtype)
        torch.testing.assert_close(token_cosine_similarity(low),
                                   token_cosine_similarity(low.double()).float(), atol=1e-6, rtol=1e-5)


def test_token_cosine_survives_huge_scales():
    tokens = torch.randn(2, 17, 8)
    torch.testing.assert_close(token_cosine_similarity(tokens * 1e30), token_cosine_similarity(tokens))


def test_streamed_covariance_equals_numpy():
    torch.manual_seed(0)
    x = torch.randn(40, 6, dtype=torch.float64) * 3 + 1
    sums = [moment_sums(part) for part in x.split([7, 20, 13])]
    total = sum(s[0] for s in sums)
    outer = sum(s[1] for s in sums)
    torch.testing.assert_close(covariance_from_sums(total, outer, 40), torch.cov(x.T))


def test_token_spectrum_matches_covariance_eigenvalues():
    torch.manual_seed(0)
    tokens = torch.randn(2, 1 + 30, 5, dtype=torch.float64)
    got = token_covariance_log_spectrum(tokens)
    for b in range(2):
        eig = torch.linalg.eigvalsh(torch.cov(tokens[b, 1:].T)).flip(0)
        torch.testing.assert_close(got[b], eig.log())
    wide_tokens = torch.randn(1, 1 + 4, 8, dtype=torch.float64)  # 4 patches: a covariance of rank 3 (the Gram path)
    wide = token_covariance_log_spectrum(wide_tokens)
    eig = torch.linalg.eigvalsh(torch.cov(wide_tokens[0, 1:].T)).flip(0)
    torch.testing.assert_close(wide[0, :3], eig[:3].log())
    assert wide.shape == (1, 8) and torch.all(wide[0, 3:] == math.log(1e-12))


def test_attention_mask_is_minimal_and_keeps_sixty_percent():
    torch.manual_seed(0)
    attn = torch.randn(4, 3, 49).mul(2).softmax(-1)
    keep = attention_mask(attn, 0.6)
    kept_mass = (attn * keep).sum(-1)
    assert torch.all(kept_mass >= 0.6 - 1e-6)
    smallest_kept = torch.where(keep, attn, torch.inf).amin(-1)
    assert torch.all(kept_mass - smallest_kept < 0.6)
    # kept patches are the largest ones
    assert torch.all(torch.where(keep, attn, torch.inf).amin(-1) >= torch.where(keep, -torch.inf, attn).amax(-1))


def test_attention_mask_known_case():
    # exact in binary: the 0.5 patch alone holds the 50% asked for, so the 0.375 one is not kept (DINO's strict >)
    assert attention_mask(torch.tensor([0.125, 0.375, 0.5]), 0.5).tolist() == [False, False, True]
    attn = torch.tensor([0.05, 0.5, 0.05, 0.2, 0.2])
    assert attention_mask(attn, 0.6).tolist() == [False, True, False, True, False] or \
        attention_mask(attn, 0.6).tolist() == [False, True, False, False, True]
    assert attention_mask(torch.tensor([0.1, 0.7, 0.2]), 0.6).tolist() == [False, True, False]


def test_jaccard_of_known_masks_with_ignore():
    pred = torch.zeros(4, 4, dtype=torch.bool)
    pred[:2, :2] = True
    target = torch.zeros(4, 4, dtype=torch.bool)
    target[:2, 1:3] = True
    assert float(jaccard(pred, target)) == pytest.approx(2 / 6)
    ignore = torch.zeros(4, 4, dtype=torch.bool)
    ignore[:, 0] = True
    assert float(jaccard(pred, target, ignore)) == pytest.approx(2 / 4)
    assert torch.isnan(jaccard(torch.zeros(2, 2), torch.zeros(2, 2)))
    stacked = jaccard(torch.stack([pred, target]), target)
    torch.testing.assert_close(stacked, torch.tensor([2 / 6, 1.0]))


def test_upsample_patch_mask_is_nearest_block_repeat():
    mask = torch.tensor([[[True, False], [False, True]]])
    up = upsample_patch_mask(mask, (8, 8))
    expected = mask.repeat_interleave(4, -2).repeat_interleave(4, -1)
    assert torch.equal(up, expected)


def test_knn_weighted_vote():
    train = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.2, 0.8]])
    labels = torch.tensor([0, 0, 1, 1, 1])
    test = torch.tensor([[1.0, 0.05], [0.05, 1.0]])
    assert knn_predict(train, labels, test, k=2).tolist() == [0, 1]
    # with k = all, the nearest pair outweighs three far votes at low temperature
    assert knn_predict(train, labels, test[:1], k=5, T=0.07).tolist() == [0]
    # at a very high temperature every vote counts alike: the majority class wins
    assert knn_predict(train, labels, test[:1], k=5, T=1e6).tolist() == [1]


def test_knn_vote_weight_is_exp_of_cosine_over_t():
    """One class-0 row at cosine 1 against two class-1 rows at cosine 0.8: exp(1/T) > 2 exp(0.8/T),
    so class 0 wins exactly when T < 0.2 / ln 2 = 0.2885."""
    train = torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.8, 0.0, 0.6]])
    labels, query = torch.tensor([0, 1, 1]), torch.tensor([[1.0, 0.0, 0.0]])
    assert 0.25 < 0.2 / math.log(2) < 0.35
    assert knn_predict(train, labels, query, k=3, T=0.25).tolist() == [0]
    assert knn_predict(train, labels, query, k=3, T=0.35).tolist() == [1]


def test_knn_ignores_the_length_of_feature_vectors():
    """Rows are L2-normalised first: scaling any train or test row by a positive factor changes nothing."""
    g = torch.Generator().manual_seed(0)
    train, test = torch.randn(200, 8, generator=g), torch.randn(40, 8, generator=g)
    labels = torch.randint(0, 4, (200,), generator=g)
    scales = torch.exp(torch.empty(200).uniform_(math.log(0.01), math.log(100), generator=g))
    plain = knn_predict(train, labels, test, k=10, T=0.1)
    assert torch.equal(knn_predict(train * scales[:, None], labels, test * 7, k=10, T=0.1), plain)


def test_knn_in_chunks_of_test_rows_equals_one_block(monkeypatch):
    """Memory-bounded chunks (a few test rows at a time) predict what one block does."""
    g = torch.Generator().manual_seed(0)
    train, test = torch.randn(300, 8, generator=g), torch.randn(50, 8, generator=g)
    labels = torch.randint(0, 5, (300,), generator=g)
    one_block = knn_predict(train, labels, test, k=7)
    monkeypatch.setattr(knn_module, "_SIM_ELEMENTS", 300 * 3 + 1)  # 3 test rows per chunk
    assert torch.equal(knn_predict(train, labels, test, k=7), one_block)
    monkeypatch.setattr(knn_module, "_SIM_ELEMENTS", 1)  # fewer than one row's worth: still one row
    assert torch.equal(knn_predict(train, labels, test, k=7), one_block)


@pytest.mark.parametrize("change,message", [
    (dict(k=0), "k must be a whole number >= 1"),
    (dict(T=0.0), "T must be > 0"),
    (dict(T="0.07"), "T must be > 0"),
    (dict(T=True), "T must be > 0"),
    (dict(labels=torch.tensor([0.0, 1.0, 1.0])), "integers >= 0"),
    (dict(labels=torch.tensor([0, -1, 1])), "integers >= 0"),
    (dict(num_classes=2, labels=torch.tensor([0, 2, 1])), "outside num_classes=2"),
    (dict(test=torch.ones(2, 3)), "channels"),
])
def test_knn_refuses_bad_inputs_in_one_line(change, message):
    args = dict(train=torch.eye(3, 2), labels=torch.tensor([0, 1, 1]), test=torch.ones(2, 2))
    args.update(change)
    extra = {k: args.pop(k) for k in ("k", "T", "num_classes") if k in args}
    with pytest.raises(MetricInputError, match=message):
        knn_predict(args["train"], args["labels"], args["test"], **extra)


def test_patch_tokens_leave_at_least_two_patches_and_come_as_floating_point():
    from vitprobe.metrics import patch_tokens

    tokens = torch.arange(2 * 4 * 3).reshape(2, 4, 3)  # integers
    patches = patch_tokens(tokens, num_prefix_tokens=2)
    assert patches.dtype == torch.float32 and patches.tolist() == tokens[:, 2:].tolist()
    assert patch_tokens(tokens.double(), num_prefix_tokens=1).dtype == torch.float64
    for prefix in (-1, 3, 4):
        with pytest.raises(ShapeError, match="fewer than 2 patch tokens"):
            patch_tokens(tokens, num_prefix_tokens=prefix)
    with pytest.raises(ShapeError, match="must have 3 dimensions"):
        patch_tokens(tokens[None].float())


def test_knn_and_distance_take_numpy_integers():
    train, labels = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.2, 1.0]]), torch.tensor([0, 1, 1])
    assert knn_predict(train, labels, train, k=np.int64(1)).tolist() == [0, 1, 1]


def test_mask_helpers_refuse_bad_inputs_in_one_line():
    with pytest.raises(MetricInputError, match="keep_mass"):
        attention_mask(torch.rand(2, 16), keep_mass=1.5)
    with pytest.raises(ShapeError, match="do not broadcast"):
        jaccard(torch.ones(4, 4), torch.ones(8, 8))
    with pytest.raises(MetricInputError, match="torch.as_tensor"):
        jaccard_matrix(np.ones((1, 2, 4, 4)), torch.ones(1, 1, 4, 4))
    with pytest.raises(ShapeError, match="same pixels"):
        jaccard_matrix(torch.ones(1, 2, 4, 4), torch.ones(1, 1, 4, 4), ignore=torch.zeros(1, 8, 8))
    with pytest.raises(MetricInputError, match="side must be"):
        fourier_frequencies(0)


def test_accuracy_standard_error_never_vanishes_and_approaches_the_binomial_one():
    from vitprobe.metrics import accuracy_standard_error

    # 1 image of 1 right: p~ = 3/5, se = sqrt(0.24 / 5), not 0
    assert float(accuracy_standard_error(100.0, 1, scale=100.0)) == pytest.approx(100 * math.sqrt(0.24 / 5))
    assert float(accuracy_standard_error(0.0, 1, scale=100.0)) == pytest.approx(100 * math.sqrt(0.24 / 5))
    plain = math.sqrt(0.3 * 0.7 / 100000)
    assert float(accuracy_standard_error(0.3, 100000)) == pytest.approx(plain, rel=1e-4)
    assert np.isnan(accuracy_standard_error([50.0], 0, scale=100.0)).all()


@pytest.mark.parametrize("accuracy, scale, message", [
    (1.5, 1.0, r"accuracy must lie in \[0, scale=1\], got 1\.5; pass scale=100 for percent"),
    ([50.0, -0.5], 100.0, r"accuracy must lie in \[0, scale=100\], got \[50\.0, -0\.5\]"),
    (0.5, 0.0, r"scale must be > 0, got 0\.0"),
])
def test_accuracy_standard_error_refuses_an_accuracy_beyond_its_scale(accuracy, scale, message):
    """An accuracy of 1.5 on scale 1 (a percentage given without scale=100) was clipped to 1."""
    from vitprobe.metrics import MetricInputError, accuracy_standard_error

    with pytest.raises(MetricInputError, match=message):
        accuracy_standard_error(accuracy, 10, scale=scale)

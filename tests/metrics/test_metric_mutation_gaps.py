"""Known answers that close gaps found by mutation testing of vitprobe.metrics.

Each test pins a documented behaviour (REFERENCE.md or the function's docstring) that the
rest of the suite left free: a change to it used to pass every test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vitprobe.metrics import (
    MetricInputError,
    ShapeError,
    accuracy_standard_error,
    attention_distance,
    attention_mask,
    attention_nmi,
    fit_logistic,
    fourier_delta_log_amplitude,
    head_diversity,
    jaccard,
    jaccard_matrix,
    knn_predict,
    log_singular_values,
    patch_attention,
    unit_rows,
    upsample_patch_mask,
)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_attention_is_computed_in_float32(dtype):
    """'Computed in float32 at least': half-precision input gives float32 results equal to
    those of the same values handed over as float32."""
    attn = (torch.randn(2, 3, 17, 17, generator=torch.Generator().manual_seed(0)) * 2).softmax(-1).to(dtype)
    exact = attn.float()
    assert patch_attention(attn).dtype == torch.float32
    for metric in (attention_nmi, head_diversity, lambda a: attention_distance(a, 16)):
        got = metric(attn)
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, metric(exact))


def test_a_row_whose_patch_mass_is_below_the_smallest_normal_number_is_uniform():
    """A query whose patch weights sum to less than float32's smallest normal number (here
    one subnormal weight, 1e-40, on its own patch) counts as having no patch mass: uniform,
    not a one-hot row blown up from the subnormal."""
    n = 4
    attn = torch.full((1, 1, n + 1, n + 1), 1.0 / (n + 1))
    attn[0, 0, 1] = 0.0
    attn[0, 0, 1, 0] = 1.0
    attn[0, 0, 1, 1] = 1e-40
    assert 0 < float(attn[0, 0, 1, 1]) < torch.finfo(torch.float32).tiny
    rows = patch_attention(attn)
    torch.testing.assert_close(rows[0, 0, 0], torch.full((n,), 1.0 / n), rtol=0, atol=0)


def test_collapsed_attention_has_nmi_of_exactly_zero_or_more():
    """NMI is I / sqrt(H(q) H(k)) with I >= 0: when every query attends the same way (I = 0),
    rounding must not make it negative."""
    gen = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.float64):
        row = (torch.randn(4, 32, 1, 50, generator=gen) * 3).softmax(-1).to(dtype)
        nmi = attention_nmi(row.expand(4, 32, 50, 50).contiguous())
        assert (nmi >= 0).all()
        assert (nmi <= 1e-5).all()


def test_fourier_refuses_an_oblong_grid_with_a_shape_error():
    """The diagonal of the spectrum needs h = w: a 2 x 3 grid is a ShapeError naming it."""
    tokens = torch.randn(1, 1 + 6, 4)
    with pytest.raises(ShapeError, match="square patch grid, got 2x3"):
        fourier_delta_log_amplitude(tokens, grid=(2, 3))


def test_knn_refuses_an_empty_training_set_with_a_shape_error():
    """No train rows: a ShapeError, not an error from deep inside torch."""
    with pytest.raises(ShapeError, match="0 rows and 0 labels"):
        knn_predict(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), torch.ones(1, 2))


def test_knn_caps_k_at_the_number_of_training_rows():
    """k = 20 over 3 train rows: all 3 vote. One class-0 row at cosine 1 against two class-1
    rows at cosine 0.8, T = 0.35: exp(1/T) = 17.4 < 2 exp(0.8/T) = 19.7, so class 1 wins,
    where the nearest row alone (k = 1) says class 0."""
    train = torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.8, 0.0, 0.6]])
    labels, query = torch.tensor([0, 1, 1]), torch.tensor([[1.0, 0.0, 0.0]])
    assert math.exp(1 / 0.35) < 2 * math.exp(0.8 / 0.35)
    assert knn_predict(train, labels, query, k=1, T=0.35).tolist() == [0]
    assert knn_predict(train, labels, query, k=20, T=0.35).tolist() == [1]


def test_knn_of_no_test_rows_is_an_empty_long_tensor():
    """m = 0 test rows: a LongTensor of shape (0,), as for any m."""
    got = knn_predict(torch.eye(3), torch.tensor([0, 1, 2]), torch.zeros(0, 3))
    assert got.shape == (0,) and got.dtype == torch.long


def test_accuracy_standard_error_reads_an_accuracy_past_its_range_as_the_bound():
    """An accuracy a rounding step past 100% (or below 0) is clipped to the range, p in [0, 1];
    at n = 3, p~ = 5/7 (or 2/7), se = sqrt(5/7 * 2/7 / 7)."""
    at_bounds = accuracy_standard_error([100.0, 0.0], 3, scale=100.0)
    np.testing.assert_array_equal(accuracy_standard_error([100.0 + 1e-6, -1e-6], 3, scale=100.0), at_bounds)
    np.testing.assert_allclose(at_bounds, np.full(2, 100 * math.sqrt(5 / 7 * 2 / 7 / 7)), rtol=1e-12)


def test_a_feature_constant_up_to_rounding_is_not_blown_up_by_the_probe():
    """0.7 in each of 500 rows has a float64 std of about 2e-16 (its mean is off by rounding):
    below StandardScaler's constant-feature bound, so its scale is 1, as for an exact constant."""
    features = torch.full((500, 1), 0.7, dtype=torch.float64)
    assert 0 < float(features.std(dim=0, correction=0)) < 1e-15
    assert fit_logistic(features, torch.tensor([0, 1] * 250)).scale.tolist() == [1.0]


@pytest.mark.parametrize("change,message", [({"tol": 0.0}, "tol must be > 0"),
                                            ({"max_iter": 0}, "max_iter must be a whole number >= 1")])
def test_fit_logistic_refuses_a_bad_tolerance_or_iteration_count(change, message):
    """tol and max_iter are checked as C is: one-line MetricInputErrors."""
    with pytest.raises(MetricInputError, match=message):
        fit_logistic(torch.randn(6, 3), torch.tensor([0, 1] * 3), **change)


def test_an_intercept_only_fit_has_its_closed_form_and_reports_convergence_on_the_bias_too():
    """Constant features leave only the bias: a class-1 share of 1/3 gives b = log(1/2).
    Stopped after one iteration at a tiny tol, the bias is not there yet and the fit says so
    (the weights' gradient, 0 throughout, must not decide)."""
    features, labels = torch.zeros(30, 2, dtype=torch.float64), torch.tensor([0] * 20 + [1] * 10)
    done = fit_logistic(features, labels, tol=1e-8)
    assert done.converged and float(done.bias[0]) == pytest.approx(math.log(0.5), abs=1e-8)
    assert not fit_logistic(features, labels, max_iter=1, tol=1e-14).converged


def test_upsample_patch_mask_follows_the_floor_rule_at_uneven_ratios():
    """out[i] = mask[floor(i h / H)]: 3 patches over 4 pixels map to patches 0, 0, 1, 2."""
    mask = torch.tensor([[True, False, True]])
    up = upsample_patch_mask(mask, (1, 4))
    assert up.tolist() == [[True, True, False, True]]


def test_jaccard_leaves_ignored_pixels_out_of_the_intersection_too():
    """Pred and target overlap on 2 pixels, one of them ignored: 1 valid pixel in both over
    2 valid pixels in either, IoU = 1 / 2, for jaccard and jaccard_matrix alike."""
    pred = torch.tensor([[True, True, True, False]])
    target = torch.tensor([[False, True, True, False]])
    ignore = torch.tensor([[False, False, True, False]])
    assert float(jaccard(pred, target, ignore)) == pytest.approx(1 / 2)
    got = jaccard_matrix(pred[None, None], target[None, None], ignore[None])
    assert float(got) == pytest.approx(1 / 2)


def test_keep_mass_lies_in_zero_to_one_with_one_included():
    """keep_mass in (0, 1]: 1 keeps every patch that holds any mass, 0 is refused."""
    assert attention_mask(torch.tensor([0.0, 0.25, 0.75]), 1.0).tolist() == [False, True, True]
    with pytest.raises(MetricInputError, match="must lie in"):
        attention_mask(torch.tensor([0.25, 0.75]), 0.0)


def test_mask_helpers_refuse_masks_of_too_few_dimensions_or_other_batches():
    """(H, W) at least for jaccard and upsampling; (B, masks, pixels...) of one batch and one
    pixel grid for jaccard_matrix."""
    with pytest.raises(ShapeError, match="at least 2 dimensions"):
        jaccard(torch.ones(4, dtype=torch.bool), torch.ones(4, dtype=torch.bool))
    with pytest.raises(ShapeError, match="at least 2 dimensions"):
        upsample_patch_mask(torch.ones(4, dtype=torch.bool), (8, 8))
    with pytest.raises(ShapeError, match="share the batch size"):
        jaccard_matrix(torch.ones(2, 1, 4, 4), torch.ones(3, 1, 4, 4))
    with pytest.raises(ShapeError, match="need \\(B, masks, pixels...\\)"):
        jaccard_matrix(torch.ones(4, 4), torch.ones(1, 1, 4))


def test_log_singular_values_floor_zero_values_at_1e_minus_12():
    """log(max(s, 1e-12)): a zero matrix has every log singular value at log 1e-12, not -inf."""
    got = log_singular_values(torch.zeros(2, 3, 3, dtype=torch.float64))
    torch.testing.assert_close(got, torch.full((2, 3), math.log(1e-12), dtype=torch.float64))


@pytest.mark.parametrize("scale", [1e30, 1e-30])
def test_unit_rows_neither_overflow_nor_underflow(scale):
    """float32 rows at 1e30 (squares overflow) or 1e-30 (squares underflow) still come out
    as x / ||x|| of the same rows at scale 1; a zero row stays 0."""
    x = torch.tensor([[3.0, 4.0], [1.0, 0.0], [0.0, 0.0]])
    expected = torch.tensor([[0.6, 0.8], [1.0, 0.0], [0.0, 0.0]])
    torch.testing.assert_close(unit_rows(x * scale), expected)

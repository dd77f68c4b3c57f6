"""Known answers for attention distance, NMI and head diversity."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from vitprobe.metrics import (
    MetricInputError,
    ShapeError,
    attention_distance,
    attention_nmi,
    attention_nmi_and_diversity,
    even_attention_distance,
    head_diversity,
)
from vitprobe.metrics.attention import _log


def _with_prefix(block: torch.Tensor, prefix: int = 1) -> torch.Tensor:
    """Embed a patch block (B, H, n, n) into (B, H, n+P, n+P) with some mass on the prefix."""
    b, h, n, _ = block.shape
    full = torch.zeros(b, h, n + prefix, n + prefix)
    full[..., prefix:, prefix:] = block * 0.5
    full[..., prefix:, :prefix] = 0.5 / prefix
    full[..., :prefix, :] = 1.0 / (n + prefix)
    return full


def _mean_pairwise_distance(h: int, w: int, p: int) -> float:
    cells = np.array(list(itertools.product(range(h), range(w))), dtype=np.float64)
    gaps = cells[:, None, :] - cells[None, :, :]
    return float(p * np.sqrt((gaps ** 2).sum(-1)).mean())


def test_uniform_attention_distance_is_mean_pairwise_pixel_distance():
    n = 14 * 14
    attn = _with_prefix(torch.full((2, 3, n, n), 1.0 / n))
    got = attention_distance(attn, patch_size=16)
    expected = _mean_pairwise_distance(14, 14, 16)
    assert expected == pytest.approx(116.5, abs=0.1)
    torch.testing.assert_close(got, torch.full((2, 3), expected), rtol=1e-5, atol=0)
    assert even_attention_distance((14, 14), 16) == pytest.approx(expected, rel=1e-6)


def test_even_attention_distance_closed_forms():
    # 2 x 2 cells: 4 pairs at 0, 8 at 1, 4 at sqrt(2) cells.
    assert even_attention_distance((2, 2), 16) == pytest.approx(16 * (8 + 4 * math.sqrt(2)) / 16, rel=1e-7)
    assert even_attention_distance((1, 3), 4) == pytest.approx(4 * (4 * 1 + 2 * 2) / 9, rel=1e-7)
    assert even_attention_distance((3, 5), 8) == pytest.approx(_mean_pairwise_distance(3, 5, 8), rel=1e-6)


def test_identity_attention_has_zero_distance_and_unit_nmi():
    attn = _with_prefix(torch.eye(16).expand(2, 4, 16, 16))
    torch.testing.assert_close(attention_distance(attn, 8), torch.zeros(2, 4))
    torch.testing.assert_close(attention_nmi(attn), torch.ones(2, 4))


def test_exact_zeros_in_attention_raise_no_numpy_warning():
    """0 log 0 = 0 is taken on purpose: NumPy's log(0) warning must not leak to the user."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nmi, diversity = attention_nmi_and_diversity(torch.eye(17).expand(2, 3, 17, 17))
    torch.testing.assert_close(nmi, torch.ones(2, 3))
    torch.testing.assert_close(diversity, torch.zeros(2))


def test_distance_on_rectangular_grid_and_neighbour_attention():
    # every query attends its right-hand neighbour (wrapping within the row): distance 1 or w-1 cells
    h, w, p = 2, 3, 4
    n = h * w
    block = torch.zeros(1, 1, n, n)
    for i in range(n):
        r, c = divmod(i, w)
        block[0, 0, i, r * w + (c + 1) % w] = 1.0
    expected = p * (h * ((w - 1) * 1 + 1 * (w - 1))) / n
    got = attention_distance(_with_prefix(block), p, grid=(h, w))
    torch.testing.assert_close(got, torch.tensor([[expected]]))


def test_a_query_that_gives_almost_all_its_attention_to_the_class_token_is_renormalised_all_the_same():
    """An attention sink: one query sends all but 4e-9 of its attention to the class token,
    spread evenly over the patches. Renormalised, every row is uniform, so NMI is 0 and each
    query's distance is its mean distance to the patches; a 1e-8 floor on the row sum left
    that row at 0.4 of a distribution (NMI 0.034). With no patch mass at all, the row is
    uniform too (as the published notebooks' additive eps makes it), not a query at distance 0."""
    n, p = 4, 16
    cells = torch.tensor(list(itertools.product(range(2), range(2))), dtype=torch.float64)
    even = p * torch.cdist(cells, cells).mean(dim=1)  # each query's distance under uniform attention
    for patch_mass in (4e-9, 0.0):
        attn = torch.full((1, 1, n + 1, n + 1), 1.0 / (n + 1), dtype=torch.float64)
        attn[0, 0, 1] = torch.tensor([1.0 - patch_mass] + [patch_mass / n] * n)
        torch.testing.assert_close(attention_nmi(attn), torch.zeros(1, 1, dtype=torch.float64), atol=1e-12, rtol=0)
        torch.testing.assert_close(attention_distance(attn, p), even.mean().reshape(1, 1), rtol=1e-7, atol=0)
    peaked = torch.zeros(1, 1, n + 1, n + 1)  # float32: 1e-30 of mass, all on the query's own patch
    peaked[0, 0, :, 0] = 1.0
    for i in range(1, n + 1):
        peaked[0, 0, i, i], peaked[0, 0, i, 0] = 1e-30, 1.0 - 1e-30
    torch.testing.assert_close(attention_distance(peaked, p), torch.zeros(1, 1))
    torch.testing.assert_close(attention_nmi(peaked), torch.ones(1, 1))


def test_collapsed_attention_has_zero_nmi():
    n = 25
    uniform = torch.full((1, 2, n, n), 1.0 / n)
    same_key = torch.zeros(1, 2, n, n)
    same_key[..., 3] = 1.0
    for block in (uniform, same_key):
        torch.testing.assert_close(attention_nmi(_with_prefix(block)), torch.zeros(1, 2), atol=1e-6, rtol=0)


def test_nmi_matches_direct_formula():
    torch.manual_seed(0)
    attn = torch.randn(3, 2, 10, 10, dtype=torch.float64).softmax(-1)
    a = attn[:, :, 1:, 1:]
    a = a / a.sum(-1, keepdim=True)
    n = a.shape[-1]
    pk = a.mean(-2, keepdim=True)
    mi = (a * torch.log(a / pk)).sum((-2, -1)) / n
    hk = -(pk * pk.log()).sum((-2, -1))
    expected = mi / torch.sqrt(math.log(n) * hk)
    torch.testing.assert_close(attention_nmi(attn), expected)


def test_identical_heads_have_zero_diversity():
    torch.manual_seed(1)
    one = torch.randn(2, 1, 17, 17).softmax(-1)
    torch.testing.assert_close(head_diversity(one.expand(2, 5, 17, 17)), torch.zeros(2), atol=1e-6, rtol=0)
    assert head_diversity(one).isnan().all()  # a single head: no pair, so no diversity (not "all alike")


def test_disjoint_one_hot_heads_reach_log_two():
    n = 16
    first = torch.eye(n)
    second = torch.roll(torch.eye(n), 1, dims=1)
    attn = _with_prefix(torch.stack([first, second])[None])
    torch.testing.assert_close(head_diversity(attn), torch.tensor([math.log(2.0)]))


def test_diversity_matches_pairwise_definition_and_chunking(monkeypatch):
    torch.manual_seed(2)
    attn = torch.randn(2, 4, 10, 10, dtype=torch.float64).softmax(-1)
    a = attn[:, :, 1:, 1:] / attn[:, :, 1:, 1:].sum(-1, keepdim=True)

    def entropy(p):
        return -(p * p.log()).sum(-1)

    pairs = [(i, j) for i in range(4) for j in range(i + 1, 4)]
    jsd = [entropy((a[:, i] + a[:, j]) / 2) - (entropy(a[:, i]) + entropy(a[:, j])) / 2 for i, j in pairs]
    expected = torch.stack(jsd, 1).mean((1, 2))
    torch.testing.assert_close(head_diversity(attn), expected)
    monkeypatch.setattr("vitprobe.metrics.attention._CHUNK_ELEMENTS", 1)
    torch.testing.assert_close(head_diversity(attn), expected)


@pytest.mark.parametrize("images_per_chunk", [1, 2, 7])
def test_chunks_of_images_give_the_whole_batch_result(monkeypatch, images_per_chunk):
    torch.manual_seed(3)
    attn = (torch.randn(7, 3, 17, 17) * 2).softmax(-1)
    metrics = {"distance": lambda a: attention_distance(a, 4),
               "nmi": attention_nmi, "diversity": head_diversity,
               "both": lambda a: torch.column_stack(attention_nmi_and_diversity(a))}
    monkeypatch.setattr("vitprobe.metrics.attention._CHUNK_ELEMENTS", 1 << 30)
    whole = {name: metric(attn) for name, metric in metrics.items()}
    monkeypatch.setattr("vitprobe.metrics.attention._CHUNK_ELEMENTS", images_per_chunk * attn[0].numel())
    for name, metric in metrics.items():
        torch.testing.assert_close(metric(attn), whole[name], msg=name)
    torch.testing.assert_close(whole["both"][:, :3], whole["nmi"])
    torch.testing.assert_close(whole["both"][:, 3], whole["diversity"])


def test_bad_shapes_raise_one_line_errors():
    with pytest.raises(ShapeError, match="square grid"):
        attention_distance(torch.full((1, 1, 8, 8), 1 / 8), 16)
    with pytest.raises(ShapeError, match="4 dimensions"):
        attention_nmi(torch.ones(3, 3))


def test_the_patch_block_and_its_grid_are_checked_before_any_metric():
    from vitprobe.metrics import patch_attention

    uniform = torch.full((1, 1, 17, 17), 1 / 17)
    with pytest.raises(ShapeError, match="grid 2x3 holds 6 patches but the tensor has 16"):
        attention_distance(uniform, 16, grid=(2, 3))
    with pytest.raises(ShapeError, match="must have 4 dimensions"):
        attention_nmi(uniform[None])
    with pytest.raises(ShapeError, match="square over tokens"):
        attention_nmi(torch.full((1, 1, 17, 16), 1 / 16))
    for prefix in (-1, 16, 17):  # none, or fewer than 2, patch tokens left
        with pytest.raises(ShapeError, match="fewer than 2 patch tokens"):
            attention_nmi(uniform, num_prefix_tokens=prefix)
    torch.testing.assert_close(patch_attention(uniform, num_prefix_tokens=15), torch.full((1, 1, 2, 2), 0.5))
    slightly = uniform.clone()
    slightly[0, 0, 3, 5] = -1e-3  # a small negative entry is no probability either
    with pytest.raises(MetricInputError, match="negative entries"):
        attention_nmi(slightly)


@pytest.mark.parametrize("metric", [attention_nmi, head_diversity, lambda a: attention_distance(a, 16)])
def test_logits_or_nan_instead_of_probabilities_are_refused(metric):
    """Pre-softmax logits (negative entries) and NaN used to give silent numbers (NMI 0,
    distances of -2e9 px); a softmax of the same logits is accepted."""
    logits = torch.randn(2, 3, 17, 17, generator=torch.Generator().manual_seed(0))
    with pytest.raises(MetricInputError, match="post-softmax"):
        metric(logits)
    with pytest.raises(MetricInputError, match="NaN entries: the forward pass gave non-finite values"):
        metric(torch.full((1, 1, 17, 17), float("nan")))
    assert torch.isfinite(metric(logits.softmax(-1))).all()


def test_bad_values_and_types_raise_one_line_errors():
    attn = torch.full((1, 1, 17, 17), 1 / 17)
    for patch_size in (0, -4, 0.5, 16.9, True):
        with pytest.raises(MetricInputError, match="patch_size must be a whole number >= 1"):
            attention_distance(attn, patch_size)
    with pytest.raises(MetricInputError, match="torch.as_tensor"):
        attention_nmi(attn.numpy())
    assert attention_distance(attn, np.int64(16)).shape == (1, 1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_cpu_log_equals_torchs_on_strided_input_with_zeros(dtype):
    """The entropies' log (NumPy's on the CPU) agrees with torch.log to rounding, keeps
    log 0 = -inf (which 0 log 0 = 0 relies on), and writes into a strided ``out``."""
    p = torch.rand(3, 4, 50, dtype=dtype, generator=torch.Generator().manual_seed(0))
    p[0, 0, :5] = 0.0
    view = p[:, 1:3]  # not contiguous
    out = torch.empty(3, 6, 50, dtype=dtype)[:, 2:4]
    got = _log(view, out)
    assert got.data_ptr() == out.data_ptr()
    torch.testing.assert_close(got, torch.log(view), rtol=4 * torch.finfo(dtype).eps, atol=0.0)
    assert torch.isneginf(_log(p)[0, 0, :5]).all()

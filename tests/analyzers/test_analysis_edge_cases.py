"""attention_nmi's head count, fourier's grid, token_similarity's ranks, attention_jaccard's
keep_mass, empty masks, even heads and protocol."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import torch
from analyzer_inputs import DEPTH, PATCH, PREFIX, WIDTH, concat_batches

from vitprobe.analyzers import get_analyzer
from vitprobe.capture import Site
from vitprobe.errors import ConfigError, VitprobeWarning
from vitprobe.metrics import attention_mask, head_diversity


def _compute(analyzer, *batches):
    for batch in batches:
        analyzer.update(batch)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = analyzer.compute()
    return result, [str(w.message) for w in caught if issubclass(w.category, VitprobeWarning)]


def test_two_heads_have_a_head_diversity_and_are_not_warned_of(info, batches):
    """Two heads make one pair: head_diversity_jsd is their divergence, without the one-head warning."""
    data = concat_batches(batches)
    data["sites"] = {site: t[:, :2] if site.kind == "attn" else t for site, t in data["sites"].items()}
    result, said = _compute(get_analyzer("attention_nmi").bind(dataclasses.replace(info, num_heads=2), {}), data)
    rows = result.table[result.table["metric"] == "head_diversity_jsd"]
    expected = [float(head_diversity(data["sites"][Site("attn", layer)]).double().mean()) for layer in (1, 2)]
    assert rows["value"].tolist() == pytest.approx(expected, rel=1e-5)
    assert not [s for s in said if "compares pairs of heads" in s]


def test_fourier_refuses_an_oblong_grid(info):
    oblong = dataclasses.replace(info, grid=(4, 2), img_size=4 * PATCH)
    with pytest.raises(ConfigError, match=r"^analysis 'fourier' needs a square patch grid, this model has 4x2"):
        get_analyzer("fourier").bind(oblong, {})


def test_token_spectrum_spread_past_the_rank_is_nan_too(info):
    """2 x 2 patches: each image's token covariance has rank 3, so ranks 4..8 have neither a
    mean nor a spread (a std of 0 there would read as a certain value)."""
    small = dataclasses.replace(info, grid=(2, 2), img_size=2 * PATCH)
    gen = torch.Generator().manual_seed(0)
    batch = {"index": torch.arange(6),
             "sites": {Site("tokens", layer): torch.randn(6, PREFIX + 4, WIDTH, generator=gen)
                       for layer in range(DEPTH + 1)}}
    result, _ = _compute(get_analyzer("token_similarity").bind(small, {}), batch)
    rows = result.table[result.table["metric"] == "log_singular_value_token"]
    assert rows[rows["rank"] <= 3]["std"].notna().all()
    assert rows[rows["rank"] > 3][["value", "std"]].isna().all().all()


@pytest.mark.parametrize("keep_mass", [0.3, 0.9])
def test_jaccard_masks_keep_the_given_mass_in_the_table_and_the_artifacts(info, batches, keep_mass):
    data = concat_batches(batches)
    result, _ = _compute(get_analyzer("attention_jaccard", keep_mass=keep_mass, num_artifacts=4).bind(info, {}), data)
    cls_attn = data["sites"][Site("attn", DEPTH)][:, :, 0, PREFIX:]
    scored = torch.tensor([bool(((m != 0) & (m != 255)).any()) for m in data["mask"]])
    expected = attention_mask(cls_attn, keep_mass)[scored].float().mean(dim=2).double()
    rows = result.table[result.table["metric"] == "mask_area"]
    np.testing.assert_allclose(rows["value"].to_numpy(float), expected.mean(0).numpy(), rtol=1e-6)
    art = result.artifacts
    kept = attention_mask(torch.from_numpy(art["head_attn"]).flatten(2), keep_mass).reshape(art["head_attn"].shape)
    np.testing.assert_array_equal(art["head_masks"], kept.numpy())
    assert result.protocol["keep_mass"] == keep_mass


def test_jaccard_over_images_without_objects_is_nan_and_said(info, batches):
    """Masks of background and ignored pixels only: no IoU (NaN, warned), 0 images scored, not
    'seen no images'."""
    data = concat_batches(batches)
    data["mask"] = torch.where(data["mask"] == 255, 255, 0).to(torch.uint8)
    result, said = _compute(get_analyzer("attention_jaccard", num_artifacts=0).bind(info, {}), data)
    assert result.table["value"].isna().all() and result.protocol["images_scored"] == 0
    assert any("no image had an object in its mask, so every IoU is NaN" in s for s in said)


def test_jaccard_calls_the_masks_even_only_when_every_head_keeps_about_keep_mass(info, batches):
    """Head 0 attends evenly, heads 1 and 2 to one patch each: not 'every head even'."""
    attn = concat_batches(batches)["sites"][Site("attn", DEPTH)].clone()
    patches = attn.shape[-1] - PREFIX
    attn[:, :, 0, :] = 0.0
    attn[:, 0, 0, PREFIX:] = 1.0 / patches
    attn[:, 1:, 0, PREFIX] = 1.0
    data = concat_batches(batches)
    data["sites"] = {**data["sites"], Site("attn", DEPTH): attn}
    result, said = _compute(get_analyzer("attention_jaccard").bind(info, {}), data)
    areas = result.table[result.table["metric"] == "mask_area"].sort_values("head")["value"].to_numpy()
    assert areas[0] >= 0.9 * 0.6 and np.allclose(areas[1:], 1 / patches)
    assert result.protocol["even_masks"] is False
    assert not [s for s in said if "attends about evenly" in s]


def test_jaccard_protocol_names_the_block_its_table_reads(info, batches):
    result, _ = _compute(get_analyzer("attention_jaccard", num_artifacts=0).bind(info, {}), concat_batches(batches))
    assert result.protocol["layer"] == DEPTH == info.depth
    assert set(result.table["layer"]) == {result.protocol["layer"]}


def test_token_similarity_of_a_single_image_has_no_image_spectrum_and_no_spread(info):
    """One image: no covariance over images (NaN at every rank, not a failed SVD of a 0/0
    matrix), and no sample std; its own cosine and token spectrum are still read."""
    from analyzer_inputs import make_batch

    result, _ = _compute(get_analyzer("token_similarity").bind(info, {}), make_batch([0], seed=1))
    table = result.table
    assert table[table["metric"] == "log_singular_value_image"]["value"].isna().all()
    cosine = table[table["metric"] == "token_cosine"]
    assert cosine["value"].notna().all() and cosine["std"].isna().all() and (cosine["n"] == 1).all()


def test_jaccard_refuses_a_model_without_a_class_token(info):
    """Its token 0 would be a patch (or a register), whose attention is not the CLS attention."""
    no_cls = dataclasses.replace(info, class_token=False, num_prefix_tokens=0)
    with pytest.raises(ConfigError, match=r"^analysis 'attention_jaccard' reads CLS attention and this model has no class token"):
        get_analyzer("attention_jaccard").bind(no_cls, {})

"""Each analyzer's streamed table against its metric applied once to all the data
concatenated (so the streaming: per-batch updates, mean, sample std, n; the metric formulas
are checked against their definitions in tests/metrics), the image-level spectrum against
torch.cov, plus probe accuracy on separable data, split independence and
user-facing errors."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch
from analyzer_inputs import DEPTH, HEADS, PATCH, PREFIX, WIDTH, concat_batches, make_batch

from vitprobe.analyzers import get_analyzer, list_analyzers
from vitprobe.analyzers._split import heldout_mask
from vitprobe.capture import Site
from vitprobe.errors import CaptureError, ConfigError, DataError
from vitprobe.metrics import (
    attention_distance,
    attention_mask,
    attention_nmi,
    fourier_delta_log_amplitude,
    head_diversity,
    jaccard,
    token_cosine_similarity,
    token_covariance_log_spectrum,
)
from vitprobe.plots.style import protocol_caption
from vitprobe.results import Result


ATTN_LAYERS, TOKEN_LAYERS = range(1, DEPTH + 1), range(DEPTH + 1)  # blocks 1..L; the embedding 0, then blocks


def _result(name, info, data, **params):
    analyzer = get_analyzer(name, **params).bind(info, {})
    analyzer.update(data)
    return analyzer.compute()


def _table(name, info, data, **params):
    return _result(name, info, data, **params).table


def _check(table, metric, per_image: torch.Tensor, layers: range | None = None) -> None:
    """Rows of ``metric`` (in table order) hold mean and sample std of ``per_image`` (n, ...).
    With ``layers``, ``per_image`` is (n, len(layers), ...) and each row must be labelled with
    its layer, and for (n, L, H) per-head values with its head 0..H-1."""
    rows = table[table["metric"] == metric]
    values = per_image.double().reshape(per_image.shape[0], -1)
    np.testing.assert_allclose(rows["value"].to_numpy(float), values.mean(0).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rows["std"].to_numpy(float), values.std(0).numpy(), rtol=1e-4, atol=1e-6)
    assert (rows["n"] == per_image.shape[0]).all()
    if layers is not None:
        assert per_image.shape[1] == len(layers)
        per_layer = values.shape[1] // len(layers)
        assert rows["layer"].tolist() == np.repeat(list(layers), per_layer).tolist()
        if per_image.dim() == 3 and "head" in rows and rows["head"].notna().all():
            assert rows["head"].tolist() == np.tile(np.arange(per_image.shape[2]), len(layers)).tolist()


def test_attention_tables_match_metrics(info, batches):
    data = concat_batches(batches)
    attn = [data["sites"][Site("attn", layer)] for layer in range(1, DEPTH + 1)]
    dist = torch.stack([attention_distance(a, info.patch_size, PREFIX, info.grid) for a in attn], 1)
    _check(_table("attention_distance", info, data), "attention_distance_px", dist, ATTN_LAYERS)
    table = _table("attention_nmi", info, data)
    _check(table, "nmi", torch.stack([attention_nmi(a) for a in attn], 1), ATTN_LAYERS)
    _check(table, "head_diversity_jsd", torch.stack([head_diversity(a) for a in attn], 1), ATTN_LAYERS)
    assert table[table["metric"] == "head_diversity_jsd"]["head"].isna().all()


def test_head_diversity_of_a_single_head_is_nan_and_said(info, batches):
    """One head has no pair to compare: NaN (a claim on it stays undecided), not 0 ("all alike")."""
    import dataclasses

    data = concat_batches(batches)
    data["sites"] = {site: t[:, :1] if site.kind == "attn" else t for site, t in data["sites"].items()}
    with pytest.warns(UserWarning, match=r"^attention_nmi: head_diversity_jsd compares pairs of heads and this "
                                         r"model has one, so it is NaN; .*\(--num-heads\)$"):
        result = _result("attention_nmi", dataclasses.replace(info, num_heads=1), data)
    table = result.table
    assert table[table["metric"] == "head_diversity_jsd"]["value"].isna().all()
    assert table[table["metric"] == "nmi"]["value"].notna().all()
    from vitprobe.plots import draw

    panel = draw("attention_nmi", [("one head", result)]).axes[1]  # says why it is empty
    assert [t.get_text() for t in panel.texts] == ["undefined: one head,\nno pair of heads to compare"]
    assert not panel.get_xticks().size and not panel.get_yticks().size  # no scale of nothing
    assert not draw("attention_nmi", [("heads", _result("attention_nmi", info, concat_batches(batches)))]).axes[1].texts


@pytest.mark.parametrize("given,shown", [({}, "unnamed"), ({"dataset": "digits"}, "digits")])
def test_a_standalone_result_names_its_dataset_or_says_it_has_none(info, batches, given, shown):
    analyzer = get_analyzer("attention_distance").bind(info, given)
    analyzer.update(concat_batches(batches))
    result = analyzer.compute()
    assert result.protocol["dataset"] == shown
    assert protocol_caption([result.protocol]).split(" · ")[0] == f"dataset {shown}"


def test_attention_distance_marks_even_attention_in_protocol_and_figure(info, batches):
    from vitprobe.metrics import even_attention_distance
    from vitprobe.plots import draw

    analyzer = get_analyzer("attention_distance").bind(info, {})
    analyzer.update(concat_batches(batches))
    result = analyzer.compute()
    even = even_attention_distance(info.grid, info.patch_size)
    assert result.protocol["even_attention_px"] == pytest.approx(even, abs=1e-4) and even > 0
    figure = draw("attention_distance", [("run", result)])
    lines = [ln for ln in figure.axes[0].get_lines() if ln.get_label().startswith("even attention")]
    assert len(lines) == 1 and lines[0].get_ydata()[0] == pytest.approx(even, abs=1e-4)
    low, high = figure.axes[0].get_ylim()
    highest = max(result.table["value"].max(), even)
    assert low == 0.0 and high >= 1.04 * highest  # not zoomed onto a random model's spread, no dot on the frame
    local = Result(result.name, result.table.assign(value=result.table["value"] * 0.4), result.protocol)
    low, high = draw("attention_distance", [("local", local)]).axes[0].get_ylim()
    assert low == 0.0 and high > even > local.table["value"].max()  # the even line stays in view above a local model


def test_token_tables_match_metrics(info, batches):
    data = concat_batches(batches)
    tokens = [data["sites"][Site("tokens", layer)] for layer in range(DEPTH + 1)]
    _check(_table("fourier", info, data), "delta_log_amplitude",
           torch.stack([fourier_delta_log_amplitude(t) for t in tokens], 1), TOKEN_LAYERS)
    table = _table("token_similarity", info, data)
    _check(table, "token_cosine", torch.stack([token_cosine_similarity(t) for t in tokens], 1), TOKEN_LAYERS)
    _check(table, "log_singular_value_token",
           torch.stack([token_covariance_log_spectrum(t) for t in tokens], 1), TOKEN_LAYERS)
    image = table[table["metric"] == "log_singular_value_image"]
    expected = [torch.linalg.eigvalsh(torch.cov(t[:, PREFIX:].mean(1).double().T)).flip(0).log()
                for t in tokens]
    np.testing.assert_allclose(image["value"].to_numpy(float), torch.cat(expected).numpy(), rtol=1e-6)
    assert list(image["rank"][: info.embed_dim]) == list(range(1, info.embed_dim + 1))


def test_spectrum_ranks_past_the_covariances_rank_are_nan_not_the_floor(info):
    """4 images of 2 x 2 patches, 8 channels: the covariance over images has rank 3 and each
    image's token covariance rank 3, so ranks 4..8 have no singular value (they used to read
    log(1e-12) = -27.6, which a mean over ranks would take in)."""
    import dataclasses

    small = dataclasses.replace(info, grid=(2, 2), img_size=2 * PATCH)
    gen = torch.Generator().manual_seed(0)
    batch = {"index": torch.arange(4),
             "sites": {Site("tokens", layer): torch.randn(4, PREFIX + 4, WIDTH, generator=gen) for layer in range(DEPTH + 1)}}
    result = _result("token_similarity", small, batch)
    for metric in ("log_singular_value_image", "log_singular_value_token"):
        rows = result.table[result.table["metric"] == metric]
        kept = rows[rows["rank"] <= 3]
        assert np.isfinite(kept["value"].to_numpy(float)).all() and (kept["value"] > -20).all()
        assert rows[rows["rank"] > 3]["value"].isna().all() and len(rows[rows["rank"] > 3]) == 5 * (DEPTH + 1)
    assert "NaN past the covariance's rank" in result.protocol["spectrum_ranks"]


def test_token_spectrum_on_a_sample_of_the_images_is_their_mean_over_any_batching(info, batches):
    """spectrum_fraction < 1: the token spectrum over the images the index hash picks, whatever
    the batches; the cosine and the image-level spectrum still over every image."""
    from vitprobe.analyzers.token_stats import TokenSimilarity

    data = concat_batches(batches)
    tokens = [data["sites"][Site("tokens", layer)] for layer in range(DEPTH + 1)]
    picked = heldout_mask(data["index"], 0.5, 3 ^ TokenSimilarity._SPECTRUM_SALT)
    assert 0 < int(picked.sum()) < len(picked)
    assert not torch.equal(picked, heldout_mask(data["index"], 0.5, 3))  # not the probes' split
    streamed = get_analyzer("token_similarity", spectrum_fraction=0.5, spectrum_seed=3).bind(info, {})
    for batch in batches:
        streamed.update(batch)
    result = streamed.compute()
    _check(result.table, "log_singular_value_token",
           torch.stack([token_covariance_log_spectrum(t[picked]) for t in tokens], 1))
    every = _table("token_similarity", info, data)
    for metric in ("token_cosine", "log_singular_value_image"):
        rows = [t[t["metric"] == metric].reset_index(drop=True) for t in (result.table, every)]
        np.testing.assert_allclose(rows[0]["value"].to_numpy(float), rows[1]["value"].to_numpy(float), rtol=1e-12)
        assert (rows[0]["n"] == len(picked)).all()
    assert result.protocol["spectrum_images"] == int(picked.sum())
    assert "over the images with hash(index, spectrum_seed) < spectrum_fraction" in result.protocol["spectrum_token"]
    assert "spectrum fraction 0.5 · spectrum seed 3" in protocol_caption([result.protocol])
    assert "spectrum_images" not in get_analyzer("token_similarity").bind(info, {}).protocol()


@pytest.mark.parametrize("params,message", [
    ({"spectrum_fraction": 0.0}, "spectrum_fraction=0.0 must lie in (0, 1]"),
    ({"spectrum_fraction": 1.5}, "spectrum_fraction=1.5 must lie in (0, 1]"),
    ({"spectrum_fraction": True}, "spectrum_fraction takes finite number, got True"),
    ({"spectrum_seed": -1}, "spectrum_seed must be a whole number >= 0"),
])
def test_token_spectrum_sample_settings_are_checked(params, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        get_analyzer("token_similarity", **params)


def test_a_token_spectrum_sample_needs_the_images_index(info, batches):
    batch = {k: v for k, v in batches[0].items() if k != "index"}
    get_analyzer("token_similarity").bind(info, {}).update(batch)  # every image: no index needed
    with pytest.raises(DataError, match=r"reads each image.s .index. \(spectrum_fraction < 1 picks images by it"):
        get_analyzer("token_similarity", spectrum_fraction=0.5).bind(info, {}).update(batch)


def test_fourier_layers_subset_and_frequencies(info, batches):
    table = _table("fourier", info, batches[0], layers=[2])
    assert set(table["layer"]) == {2}
    np.testing.assert_allclose(sorted(set(table["frequency"])), [0.0, 0.5])


def test_jaccard_matches_per_image_loop(info, batches):
    data = concat_batches(batches)
    analyzer = get_analyzer("attention_jaccard").bind(info, {})
    analyzer.update(data)
    result = analyzer.compute()
    table = result.table
    cls_attn = data["sites"][Site("attn", DEPTH)][:, :, 0, PREFIX:]
    keep = attention_mask(cls_attn, 0.6).reshape(-1, HEADS, *info.grid)
    per_head, best, union, area = [], [], [], []
    for b in range(keep.shape[0]):
        gt = data["mask"][b]
        pixels = keep[b].repeat_interleave(info.patch_size, -2).repeat_interleave(info.patch_size, -1)
        objects = [k for k in gt.unique().tolist() if k not in (0, 255)]
        if not objects:
            continue
        area.append(torch.stack([keep[b, h].float().mean() for h in range(HEADS)]))
        scores = torch.stack([torch.stack([jaccard(pixels[h], gt == k, gt == 255) for k in objects]).mean()
                              for h in range(HEADS)])
        per_head.append(scores)
        best.append(scores.max())
        union.append(torch.stack([jaccard(pixels.any(0), gt == k, gt == 255) for k in objects]).mean())
    assert len(per_head) < data["index"].numel()  # images without objects are left out
    _check(table, "jaccard", torch.stack(per_head))
    _check(table, "jaccard_best_head", torch.stack(best))
    _check(table, "jaccard_union", torch.stack(union))
    _check(table, "mask_area", torch.stack(area))
    assert result.protocol["images_scored"] == len(per_head)
    assert f"images scored {len(per_head)}" in protocol_caption([result.protocol])



def test_jaccard_reads_the_class_tokens_attention_to_the_patches_past_any_register(batches):
    """A model with a register after its class token: the patches' attention starts after both."""
    from dataclasses import replace

    from analyzer_inputs import make_info

    info = replace(make_info(), num_prefix_tokens=PREFIX + 1)
    data = concat_batches(batches)
    tokens = info.num_tokens
    logits = torch.randn(data["index"].numel(), HEADS, tokens, tokens, generator=torch.Generator().manual_seed(5))
    attn = (2 * logits).softmax(-1)
    data["sites"] = {**data["sites"], Site("attn", DEPTH): attn}
    analyzer = get_analyzer("attention_jaccard", num_artifacts=0).bind(info, {})
    analyzer.update(data)
    table = analyzer.compute().table
    keep = attention_mask(attn[:, :, 0, PREFIX + 1:], 0.6)
    scored = torch.tensor([bool(((m != 0) & (m != 255)).any()) for m in data["mask"]])
    _check(table, "mask_area", keep[scored].float().mean(dim=2))
    assert set(table["layer"]) == {DEPTH}  # the last block's attention


def test_jaccard_figure_marks_each_heads_mask_area(info, batches):
    """Each head's bar carries a tick at its mask_area, per run, with one legend entry."""
    from vitprobe.plots import draw

    analyzer = get_analyzer("attention_jaccard", num_artifacts=0).bind(info, {})
    analyzer.update(concat_batches(batches))
    result = analyzer.compute()
    assert not result.artifacts  # num_artifacts=0 keeps none
    table = result.table
    areas = table[table["metric"] == "mask_area"].sort_values("head")["value"].to_numpy()
    figure = draw("attention_jaccard", [("a", result), ("b", result)])
    ticks = figure.axes[0].collections
    assert len(ticks) == 2
    for run in ticks:
        segments = np.array(run.get_segments())  # (heads, 2 ends, x/y): level, within one bar
        assert np.allclose(segments[:, :, 1], areas[:, None])
        assert np.all(np.diff(segments[:, :, 0], axis=1) < 0.8 / 2)
    texts = [t.get_text() for legend in figure.legends for t in legend.get_texts()]
    assert texts.count("mask area (share of patches kept)") == 1 and {"a", "b"} <= set(texts)


def _jaccard_with_last_block(info, batches, attn: torch.Tensor) -> tuple[Result, list[str]]:
    """attention_jaccard over the fixture's images with ``attn`` as the last block's attention:
    the result and the vitprobe warnings its compute gave."""
    from vitprobe.errors import VitprobeWarning

    data = concat_batches(batches)
    data["sites"] = {**data["sites"], Site("attn", DEPTH): attn}
    analyzer = get_analyzer("attention_jaccard").bind(info, {})
    analyzer.update(data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = analyzer.compute()
    return result, [str(w.message) for w in caught if issubclass(w.category, VitprobeWarning)]


@pytest.mark.parametrize("even", [True, False])
def test_jaccard_warns_when_every_head_attends_evenly(info, batches, even):
    """Even CLS attention keeps keep_mass of the patches whatever the object: warned, with
    mask_area in the table and even_masks in the protocol; the fixture's random attention
    (heads that differ) is not."""
    attn = concat_batches(batches)["sites"][Site("attn", DEPTH)].clone()
    if even:
        attn[:, :, 0, PREFIX:] = (1.0 - attn[:, :, 0, :PREFIX].sum(-1, keepdim=True)) / (attn.shape[-1] - PREFIX)
    result, said = _jaccard_with_last_block(info, batches, attn)
    areas = result.table[result.table["metric"] == "mask_area"]["value"]
    assert len(areas) == HEADS and result.protocol["even_masks"] is even  # read by claims on the IoU
    if even:
        assert np.allclose(areas, np.ceil(0.6 * np.prod(info.grid)) / np.prod(info.grid), atol=1 / np.prod(info.grid))
        assert len(said) == 1 and "every head of the last block attends about evenly" in said[0]
        assert re.search(r"its mask keeps \d+% of the patches", said[0])  # one share, not "62%-62%"
    else:
        assert float(areas.min()) < 0.9 * 0.6 and not said



def test_jaccard_does_not_warn_of_masks_that_keep_well_under_keep_mass_of_the_patches(info, batches):
    """Each head keeps 6 of 16 patches (6 x 0.105 >= 0.6 of its attention): 37.5% of the
    patches, well below the 90% of keep_mass that even attention keeps; not warned."""
    attn = concat_batches(batches)["sites"][Site("attn", DEPTH)].clone()
    attn[:, :, 0, :PREFIX] = 0.0
    attn[:, :, 0, PREFIX:] = 0.265 / 9
    attn[:, :, 0, PREFIX:PREFIX + 7] = 0.105
    result, said = _jaccard_with_last_block(info, batches, attn)
    areas = result.table[result.table["metric"] == "mask_area"]["value"]
    assert np.allclose(areas, 6 / 16) and result.protocol["even_masks"] is False and not said


def test_jaccard_keeps_the_lowest_indices_when_a_later_batch_holds_some_of_them(info):
    """The second batch holds indices both below and above those kept from the first."""
    analyzer = get_analyzer("attention_jaccard", num_artifacts=4).bind(info, {})
    analyzer.update(make_batch([0, 5, 6, 7], seed=1))
    analyzer.update(make_batch([1, 2, 3, 8], seed=2))
    assert analyzer.compute().artifacts["index"].tolist() == [0, 1, 2, 3]


def test_jaccard_artifacts_are_the_lowest_indices_denormalised(info, batches):
    analyzer = get_analyzer("attention_jaccard", num_artifacts=4).bind(info, {})
    for batch in batches:
        analyzer.update(batch)
    art = analyzer.compute().artifacts
    assert art["index"].tolist() == [0, 1, 2, 3]
    data = concat_batches(batches)
    row = int((data["index"] == 2).nonzero())
    mean, std = torch.tensor(info.mean).view(3, 1, 1), torch.tensor(info.std).view(3, 1, 1)
    expected = ((data["image"][row] * std + mean) * 255).round().clamp(0, 255).byte().permute(1, 2, 0)
    np.testing.assert_array_equal(art["images"][2], expected.numpy())
    np.testing.assert_array_equal(art["masks"][2], data["mask"][row].numpy())
    assert art["head_attn"].shape == art["head_masks"].shape == (4, HEADS, *info.grid)
    # Each head's kept patches hold at least 60% of its CLS attention mass.
    kept_mass = (art["head_attn"] * art["head_masks"]).sum(axis=(2, 3))
    assert (kept_mass >= 0.6 * art["head_attn"].sum(axis=(2, 3)) - 1e-6).all()
    # ... and are the smallest such set, as the table's masks are (keep_mass 0.6)
    smallest = attention_mask(torch.from_numpy(art["head_attn"]).flatten(2), 0.6).reshape(art["head_attn"].shape)
    np.testing.assert_array_equal(art["head_masks"], smallest.numpy())


def test_jaccard_artifacts_from_data_in_index_order_equal_one_batchs(info):
    """Batches read in index order (later batches skip the artifacts) keep what one batch of
    all the images keeps."""
    streamed = get_analyzer("attention_jaccard", num_artifacts=6).bind(info, {})
    for start in range(0, 20, 4):
        streamed.update(make_batch(list(range(start, start + 4)), seed=start))
    whole = get_analyzer("attention_jaccard", num_artifacts=6).bind(info, {})
    whole.update(concat_batches([make_batch(list(range(start, start + 4)), seed=start)
                                 for start in range(0, 20, 4)]))
    got, expected = streamed.compute().artifacts, whole.compute().artifacts
    assert got["index"].tolist() == list(range(6))
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key])


def _separable_batch(info, n=60):
    batch = make_batch(list(range(n)), seed=5)
    cls = batch["labels"]["cls"]
    for layer in range(DEPTH + 1):
        tokens = torch.randn(n, PREFIX + 16, info.embed_dim) * 0.1
        tokens[torch.arange(n), :, cls] += 5.0
        batch["sites"][Site("tokens", layer)] = tokens
    return batch


@pytest.mark.parametrize("name", ["linear_probe", "knn"])
@pytest.mark.parametrize("pooling,final_norm", [("cls", False), ("mean", True)])
def test_probes_solve_separable_labels(name, pooling, final_norm, info):
    table = _table(name, info, _separable_batch(info), pooling=pooling, final_norm=final_norm)
    cls_rows = table[table["label"] == "cls"]
    assert (cls_rows["value"] == 100.0).all()
    assert set(table["label"]) == {"cls", "half"}
    held = int(heldout_mask(torch.arange(60), 0.2).sum())
    assert (table["n"] == held).all() and 0 < held < 60


def test_a_probe_fit_stopped_by_max_iter_is_warned_and_captioned(info):
    """An L-BFGS fit cut short reports a low accuracy as if it were the probe's: say so."""
    from vitprobe.errors import VitprobeWarning

    batch = _separable_batch(info)
    with pytest.warns(VitprobeWarning, match=r"^linear_probe: 2 of 2 fits stopped at max_iter 1 before "
                                             r"converging .*raise --param linear_probe.max_iter$"):
        result = _result("linear_probe", info, batch, layers=[1], max_iter=1)
    assert result.protocol["unconverged_fits"] == 2
    assert "unconverged fits 2" in protocol_caption([result.protocol])
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        converged = _result("linear_probe", info, batch, layers=[1])
    assert not [w for w in said if "max_iter" in str(w.message)]
    assert converged.protocol["unconverged_fits"] == 0
    assert "unconverged" not in protocol_caption([converged.protocol])


@pytest.mark.parametrize("global_pool,pooling", [("token", "cls"), ("avg", "mean")])
def test_probe_features_through_the_final_norm_are_the_models_own(global_pool, pooling):
    """With final_norm, last-block features equal timm's pre-logits: ``norm`` on every token
    then pooling for a CLS model; mean of patch tokens then ``fc_norm`` for an avg-pool model."""
    import timm

    from vitprobe.capture import capture, model_info

    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, depth=2,
                              global_pool=global_pool).eval()
    for p in model.parameters():  # non-trivial norm weights, so the order of norm and pooling shows
        p.data.add_(torch.randn_like(p) * 0.1)
    info = model_info(model)
    assert info.final_norm_after_pooling == (global_pool == "avg")
    images = torch.randn(6, 3, 32, 32)
    analyzer = get_analyzer("knn", layers=[2], pooling=pooling, final_norm=True).bind(info, {})
    with capture(model, analyzer.sites()) as cap:
        sites = cap.run(images)
    analyzer.update({"sites": sites, "index": torch.arange(6), "labels": {"c": torch.zeros(6)}})
    with torch.no_grad():
        expected = model.forward_head(model.forward_features(images), pre_logits=True)
    torch.testing.assert_close(analyzer._row_tensor("features")[:, 0], expected, rtol=1e-5, atol=1e-5)


def test_knn_accuracy_is_on_the_held_out_images_only(info):
    """Random features and labels: the table's accuracy is k-NN fitted on the images outside the
    held-out split and scored on those inside it (near chance; scoring the training images too
    would find each image itself)."""
    from vitprobe.metrics import knn_predict

    gen = torch.Generator().manual_seed(1)
    n, index = 200, torch.arange(200)
    tokens = torch.randn(n, PREFIX + 16, info.embed_dim, generator=gen)
    labels = torch.randint(0, 3, (n,), generator=gen)
    batch = {"index": index, "labels": {"c": labels}, "sites": {Site("tokens", 1): tokens}}
    table = _table("knn", info, batch, layers=[1])
    held = heldout_mask(index, 0.2)
    x = tokens[:, 0]
    expected = 100 * (knn_predict(x[~held], labels[~held], x[held], k=20, T=0.07) == labels[held]).double().mean()
    assert table["value"].tolist() == pytest.approx([float(expected)]) and float(expected) < 90


def test_mean_pooling_leaves_out_every_prefix_token(info):
    """With 3 prefix tokens (a class token and 2 registers) mean pooling averages the patches alone."""
    import dataclasses

    registers = dataclasses.replace(info, num_prefix_tokens=3)
    tokens = torch.randn(5, 3 + 16, info.embed_dim, generator=torch.Generator().manual_seed(2))
    analyzer = get_analyzer("knn", layers=[1], pooling="mean").bind(registers, {})
    analyzer.update({"index": torch.arange(5), "labels": {"c": torch.zeros(5)}, "sites": {Site("tokens", 1): tokens}})
    torch.testing.assert_close(analyzer._row_tensor("features")[:, 0], tokens[:, 3:].mean(1))


def test_heldout_split_depends_on_index_only():
    index = torch.arange(5000)
    held = heldout_mask(index, 0.2, seed=3)
    assert abs(held.float().mean().item() - 0.2) < 0.02
    perm = torch.randperm(5000)
    assert torch.equal(heldout_mask(index[perm], 0.2, seed=3), held[perm])
    assert not torch.equal(heldout_mask(index, 0.2, seed=4), held)


def test_unlabelled_negative_labels_are_ignored(info):
    batch = _separable_batch(info)
    batch["labels"]["cls"] = torch.where(batch["index"] % 2 == 0, batch["labels"]["cls"], -1)
    table = _table("knn", info, batch)
    held = heldout_mask(batch["index"], 0.2)
    expected_n = int((held & (batch["index"] % 2 == 0)).sum())
    assert (table[table["label"] == "cls"]["n"] == expected_n).all()


@pytest.mark.parametrize("name", ["linear_probe", "knn"])
def test_probe_labels_must_be_class_ids_in_a_dict(name, info):
    """A float label would be truncated to a class: refused, while whole floats are class ids."""
    batch = _separable_batch(info)
    whole = {**batch, "labels": {k: v.double() for k, v in batch["labels"].items()}}
    assert _table(name, info, whole).equals(_table(name, info, batch))
    halves = {**batch, "labels": {**batch["labels"], "cls": batch["labels"]["cls"] + 0.5}}
    with pytest.raises(DataError, match=rf"^analysis '{name}': label 'cls' holds 0.5, not a class id; map"):
        _table(name, info, halves)
    with pytest.raises(DataError, match=rf"^analysis '{name}': the batch's 'labels' is a Tensor; give a dict"):
        _table(name, info, {**batch, "labels": batch["labels"]["cls"]})
    with pytest.raises(DataError, match=rf"^analysis '{name}' reads each image's 'index' \(to hold out"):
        _table(name, info, {k: v for k, v in batch.items() if k != "index"})


@pytest.mark.parametrize("name", ["linear_probe", "knn"])
def test_images_that_share_an_index_are_warned_of(name, info, recwarn):
    """The split hashes the index: items given one index by mistake all land on one side."""
    batch = _separable_batch(info)
    _table(name, info, batch)
    assert not [w for w in recwarn if "share an 'index'" in str(w.message)]
    batch["index"] = batch["index"] // 3  # each index given to three images
    with pytest.warns(UserWarning, match=rf"^{name}: images share an 'index' \(20 shared values, e.g. 0\); the "
                                         "held-out split is chosen by index"):
        _table(name, info, batch)


@pytest.mark.parametrize("name", list_analyzers())
def test_compute_before_any_image_is_refused(name, info, batches):
    """An empty state gave a table of NaN (or no rows); one batch, also through load_state_dict, computes."""
    analyzer = get_analyzer(name).bind(info, {})
    with pytest.raises(DataError, match=rf"^analysis '{name}' has seen no images; call update\(\)"):
        analyzer.compute()
    analyzer.update(batches[0])
    fresh = get_analyzer(name).bind(info, {})
    fresh.load_state_dict(analyzer.state_dict())
    assert len(fresh.compute().table) > 0


def test_user_errors_are_one_line_vitprobe_errors(info, batches):
    with pytest.raises(ConfigError, match="unknown analysis 'nope'; choose from"):
        get_analyzer("nope")
    with pytest.raises(ConfigError, match="has no parameter colour"):
        get_analyzer("fourier", colour="red")
    with pytest.raises(ConfigError, match="layers"):
        get_analyzer("attention_distance", layers=[0]).bind(info, {})
    with pytest.raises(ConfigError, match="pooling"):
        get_analyzer("linear_probe", pooling="max")
    for probe in ("knn", "linear_probe"):  # the embedding's class token is one vector for all images
        with pytest.raises(ConfigError, match=rf"^analysis '{probe}': layer 0 with pooling 'cls': .* scores chance"):
            get_analyzer(probe, layers=[0, 1]).bind(info, {})
        assert get_analyzer(probe, layers=[0, 1], pooling="mean").bind(info, {}).layers_ == (0, 1)
    with pytest.raises(ConfigError, match="not bound"):
        get_analyzer("fourier").update(batches[0])
    analyzer = get_analyzer("attention_nmi", layers=[2]).bind(info, {})
    with pytest.raises(CaptureError, match="attn.2"):
        analyzer.update({**batches[0], "sites": {}})
    with pytest.raises(DataError, match="needs object masks"):
        get_analyzer("attention_jaccard").bind(info, {}).update({**batches[0], "mask": None})
    with pytest.raises(DataError, match="needs labels"):
        get_analyzer("knn").bind(info, {}).update({**batches[0], "labels": {}})
    with pytest.raises(ConfigError, match="cannot merge"):
        get_analyzer("fourier").bind(info, {}).merge(get_analyzer("fourier", layers=[1]).bind(info, {}))


def test_an_analyzer_binds_to_the_model_itself_as_to_its_info():
    import timm

    from vitprobe.capture import model_info

    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, depth=2)
    by_model = get_analyzer("attention_distance").bind(model)
    assert by_model.info_ == model_info(model) and by_model.sites() == get_analyzer(
        "attention_distance").bind(model_info(model)).sites()

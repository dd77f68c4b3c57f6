"""One harness for every registered analyzer: streaming equals all-at-once, merging two
shards equals one pass (also into a shard that saw no image; shards bound with other
parameters or another model are refused), the state survives a state_dict round trip (a
snapshot, not a view), layers as given, and the spread of a table (0 for identical images,
NaN where there is none)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from analyzer_inputs import PREFIX, concat_batches, make_batch

from vitprobe.analyzers import Analyzer, get_analyzer, list_analyzers
from vitprobe.errors import ConfigError

PROTOCOL = {"dataset": "synthetic:24", "image_size": 16, "checkpoint_sha256": "abc"}


def _run(name: str, info, batches: list[dict], **params) -> Analyzer:
    analyzer = get_analyzer(name, **params).bind(info, PROTOCOL)
    for batch in batches:
        analyzer.update(batch)
    return analyzer


def _assert_same_result(got, expected) -> None:
    pd.testing.assert_frame_equal(got.table, expected.table, rtol=1e-6, atol=1e-6)
    assert got.protocol == expected.protocol
    assert sorted(got.artifacts) == sorted(expected.artifacts)
    for key in expected.artifacts:
        np.testing.assert_allclose(got.artifacts[key], expected.artifacts[key], rtol=1e-6)


@pytest.mark.parametrize("name", list_analyzers())
def test_streamed_equals_all_at_once(name, info, batches):
    streamed = _run(name, info, batches).compute()
    at_once = _run(name, info, [concat_batches(batches)]).compute()
    _assert_same_result(streamed, at_once)
    table = streamed.table
    assert len(table) and np.isfinite(table["value"].to_numpy(dtype=float)).all()
    assert set(table["n"]) <= set(range(1, 25))
    for key, value in PROTOCOL.items():
        assert streamed.protocol[key] == value
    assert streamed.protocol["analysis"] == name
    assert set(table["metric"]) == set(get_analyzer(name).metrics)  # what recipes' claims may name


@pytest.mark.parametrize("name", list_analyzers())
def test_merge_of_two_shards_equals_one_pass(name, info, batches):
    whole = _run(name, info, batches).compute()
    first = _run(name, info, batches[:2])
    second = _run(name, info, batches[2:])
    _assert_same_result(first.merge(second).compute(), whole)
    first, second = _run(name, info, batches[:1]), _run(name, info, batches[1:])
    _assert_same_result(second.merge(first).compute(), whole)


@pytest.mark.parametrize("name", list_analyzers())
def test_state_dict_round_trip_and_reset(name, info, batches):
    source = _run(name, info, batches)
    state = source.state_dict()
    assert all(k.startswith(("sum/", "rows/")) for k in state)
    target = get_analyzer(name).bind(info, PROTOCOL)
    target.load_state_dict(state)
    _assert_same_result(target.compute(), source.compute())
    fresh = _run(name, info, batches[:1]).compute()
    source.reset()
    source.update(batches[0])
    _assert_same_result(source.compute(), fresh)


BUILT_IN_NEEDS = {  # (masks, labels)
    "attention_distance": (False, False), "attention_nmi": (False, False), "fourier": (False, False),
    "token_similarity": (False, False), "attention_jaccard": (True, False), "linear_probe": (False, True),
    "knn": (False, True)}


@pytest.mark.parametrize("name", list_analyzers())
def test_sites_are_declared_and_flags_set(name, info):
    analyzer = get_analyzer(name).bind(info, {})
    sites = analyzer.sites()
    assert sites and all(s.kind in ("attn", "tokens") for s in sites)
    if name in BUILT_IN_NEEDS:  # an analyzer added later declares its own needs
        assert (analyzer.requires_masks, analyzer.requires_labels) == BUILT_IN_NEEDS[name]


def test_a_layer_analyzer_must_name_a_site_kind_there_is():
    from vitprobe.analyzers import LayerAnalyzer

    with pytest.raises(TypeError, match=r"site_kind is 'token'; it must be one of \['attn', 'tokens'\]"):
        type("Misspelt", (LayerAnalyzer,), {"site_kind": "token"})


@pytest.mark.parametrize("name", list_analyzers())
def test_merging_into_a_shard_that_saw_no_images_gives_the_other_shards_result(name, info, batches):
    """A rank that read no image (more ranks than images) holds no rows at all: merging the
    other shard into it must keep every row that only the other shard has."""
    whole = _run(name, info, batches)
    empty = get_analyzer(name).bind(info, PROTOCOL)
    _assert_same_result(empty.merge(whole).compute(), whole.compute())


@pytest.mark.parametrize("name, mine, theirs", [
    ("attention_distance", {"layers": [1]}, {"layers": [2]}),  # same state shapes, other layers
    ("knn", {"k": 5}, {"k": 20}),
    ("attention_jaccard", {"keep_mass": 0.5}, {"keep_mass": 0.6}),
    ("token_similarity", {"spectrum_fraction": 0.5}, {}),
])
def test_merge_refuses_other_parameters_even_when_the_states_fit(name, mine, theirs, info, batches):
    """States of the same shapes but other parameters (layer 1 against layer 2) would add up
    into numbers of neither; refused, not merged."""
    first = _run(name, info, batches[:1], **mine)
    second = _run(name, info, batches[1:], **theirs)
    with pytest.raises(ConfigError, match=rf"^cannot merge '{name}' with parameters .*; merge like with like$"):
        first.merge(second)


@pytest.mark.parametrize("name", list_analyzers())
def test_a_state_dict_is_a_snapshot_and_loading_one_copies_it(name, info, batches):
    """state_dict() taken after the first batch still describes the first batch after more
    updates (a checkpoint of the pass); an analyzer that loaded it and goes on does not
    change it either."""
    source = _run(name, info, batches[:1])
    state = source.state_dict()
    kept = {k: v.clone() for k, v in state.items()}
    source.update(batches[1])
    target = get_analyzer(name).bind(info, PROTOCOL)
    target.load_state_dict(state)
    target.update(batches[2])
    assert sorted(state) == sorted(kept)
    for key in kept:
        torch.testing.assert_close(state[key], kept[key], rtol=0, atol=0, msg=key)
    first_only = get_analyzer(name).bind(info, PROTOCOL)
    first_only.load_state_dict(state)
    _assert_same_result(first_only.compute(), _run(name, info, batches[:1]).compute())


def test_a_state_with_a_key_of_no_kind_is_refused(info, batches):
    state = _run("attention_distance", info, batches[:1]).state_dict()
    target = get_analyzer("attention_distance").bind(info, PROTOCOL)
    with pytest.raises(ConfigError, match=r"state for 'attention_distance' has keys .*same analysis and model"):
        target.load_state_dict({**state, "stray/x": torch.zeros(1)})


@pytest.mark.parametrize("name, metrics", [
    ("attention_distance", ("attention_distance_px",)),
    ("attention_nmi", ("nmi", "head_diversity_jsd")),
    ("fourier", ("delta_log_amplitude",)),
    ("token_similarity", ("token_cosine", "log_singular_value_token")),
])
@pytest.mark.parametrize("images", [5, 10, 24])
def test_images_that_are_all_alike_have_a_standard_deviation_of_zero_not_nan(name, metrics, images, info):
    """Every image the same: each per-image value is the same, so its sample std is 0. From the
    moments, sumsq - sum^2 / n can round below zero; that must read 0, not NaN."""
    one = make_batch([0], seed=11)
    batch = {"index": torch.arange(images),
             "sites": {site: t.expand(images, *t.shape[1:]).contiguous() for site, t in one["sites"].items()}}
    table = _run(name, info, [batch]).compute().table
    rows = table[table["metric"].isin(metrics) & table["value"].notna()]
    assert len(rows) and (rows["n"] == images).all()
    assert rows["std"].notna().all()
    np.testing.assert_allclose(rows["std"].to_numpy(float), 0.0, atol=1e-6)


def test_layers_given_out_of_order_or_twice_are_each_read_once_in_order(info, batches):
    data = concat_batches(batches)
    given = get_analyzer("attention_distance", layers=[2, 1, 2]).bind(info, {})
    assert given.layers_ == (1, 2) and given.protocol()["layers"] == [1, 2]
    given.update(data)
    reference = get_analyzer("attention_distance").bind(info, {})
    reference.update(data)
    pd.testing.assert_frame_equal(given.compute().table, reference.compute().table)


def test_an_empty_list_of_layers_is_refused_from_python_as_from_the_command_line(info):
    from vitprobe.analyzers.attention_stats import AttentionDistance

    with pytest.raises(ConfigError, match=r"layers \[\] must be a non-empty subset of 1..2"):
        AttentionDistance(layers=[]).bind(info, {})
    with pytest.raises(ConfigError, match=r"layers takes block numbers"):
        get_analyzer("attention_distance", layers=[])


def test_the_protocol_counts_the_prefix_tokens_the_model_has(info, batches):
    """num_prefix_tokens_dropped is the number of tokens before the patches (a class token and
    two registers: 3), for attention and token analyses alike."""
    import dataclasses

    registers = dataclasses.replace(info, num_prefix_tokens=3)
    for name in ("attention_distance", "attention_nmi", "fourier", "token_similarity"):
        assert get_analyzer(name).bind(registers, {}).protocol()["num_prefix_tokens_dropped"] == 3
        assert get_analyzer(name).bind(info, {}).protocol()["num_prefix_tokens_dropped"] == PREFIX


def test_a_table_without_a_spread_says_nan_not_zero(info, batches):
    """The probes' accuracies and the image-level spectrum have no per-image spread: their std
    is NaN (unknown), never 0 (which a figure would draw as certain)."""
    data = concat_batches(batches)
    table = _run("token_similarity", info, [data]).compute().table
    assert table[table["metric"] == "log_singular_value_image"]["std"].isna().all()
    assert table[table["metric"] == "token_cosine"]["std"].notna().all()
    table = _run("knn", info, [data]).compute().table
    assert len(table) and table["std"].isna().all()


def test_merge_refuses_a_shard_of_another_model(info, batches):
    """A shard bound to a model with one head: its (layers, 1) sums would broadcast into the
    (layers, 3) ones; refused instead."""
    import dataclasses

    one_head = dataclasses.replace(info, num_heads=1)
    data = batches[0]
    mine = _run("attention_distance", info, [data])
    theirs = _run("attention_distance", one_head,
                  [{**data, "sites": {s: t[:, :1] if s.kind == "attn" else t for s, t in data["sites"].items()}}])
    with pytest.raises(ConfigError, match=r"^cannot merge state 'sum/attention_distance_px.sum' of shapes \(2, 3\) "
                                          r"and \(2, 1\); both shards must observe one model"):
        mine.merge(theirs)

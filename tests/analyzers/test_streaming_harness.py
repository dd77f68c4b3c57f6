"""One harness for every registered analyzer: streaming equals all-at-once, merging two
shards equals one pass, and the state survives a state_dict round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from analyzer_inputs import concat_batches

from vitprobe.analyzers import Analyzer, get_analyzer, list_analyzers

PROTOCOL = {"dataset": "synthetic:24", "image_size": 16, "checkpoint_sha256": "abc"}


def _run(name: str, info, batches: list[dict]) -> Analyzer:
    analyzer = get_analyzer(name).bind(info, PROTOCOL)
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

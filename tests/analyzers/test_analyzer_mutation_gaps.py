"""Known answers that close gaps found by mutation testing of vitprobe.analyzers.

Each test pins a documented behaviour (REFERENCE.md, a docstring or the protocol an analyzer
writes) that the rest of the suite left free: a change to it used to pass every test.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import pytest
import torch
from analyzer_inputs import compute_warned

from vitprobe.analyzers import analyzer_class, get_analyzer
from vitprobe.analyzers._params import _kind, check_value
from vitprobe.analyzers._split import heldout_mask
from vitprobe.capture import Site
from vitprobe.errors import ConfigError
from vitprobe.metrics import (
    attention_distance,
    attention_nmi,
    fourier_delta_log_amplitude,
    head_diversity,
    token_cosine_similarity,
    token_covariance_log_spectrum,
)


@pytest.mark.parametrize("name", ["fourier", "token_similarity"])
def test_token_analyses_record_that_no_final_norm_is_applied(name, info, batches):
    """REFERENCE.md: tokens[l] is the residual stream, the final norm NOT applied; the
    protocol says so."""
    analyzer = get_analyzer(name).bind(info, {})
    analyzer.update(batches[0])
    assert analyzer.compute().protocol["final_norm"] is False


def test_loading_a_state_of_another_shape_is_refused(info):
    """A state saved from a model with more heads has the same keys but other shapes: refused."""
    wider = dataclasses.replace(info, num_heads=info.num_heads + 1)
    other = get_analyzer("attention_distance").bind(wider, {})
    analyzer = get_analyzer("attention_distance").bind(info, {})
    with pytest.raises(ConfigError, match="has shape .* expected .*same model please"):
        analyzer.load_state_dict(other.state_dict())


def _model_data(info, images: int, seed: int) -> dict:
    """A batch for ``info`` (its prefix and grid) with every site of the model."""
    gen = torch.Generator().manual_seed(seed)
    n = info.num_tokens
    sites = {}
    for layer in range(1, info.depth + 1):
        sites[Site("attn", layer)] = (2 * torch.randn(images, info.num_heads, n, n, generator=gen)).softmax(-1)
    for layer in range(info.depth + 1):
        sites[Site("tokens", layer)] = torch.randn(images, n, info.embed_dim, generator=gen)
    return {"index": torch.arange(images), "sites": sites}


def _values(table, metric) -> np.ndarray:
    return table[table["metric"] == metric]["value"].to_numpy(float)


def test_attention_analyses_read_past_every_register_on_an_oblong_grid(info):
    """A class token and 2 registers, a 2 x 8 patch grid: the tables are the metrics' means
    with all 3 prefix tokens dropped and distances measured on that grid."""
    oblong = dataclasses.replace(info, num_prefix_tokens=3, grid=(2, 8))
    data = _model_data(oblong, 6, seed=0)
    attn = [data["sites"][Site("attn", layer)] for layer in range(1, oblong.depth + 1)]
    distance = torch.stack([attention_distance(a, oblong.patch_size, 3, (2, 8)) for a in attn], 1).mean(0)
    nmi = torch.stack([attention_nmi(a, 3) for a in attn], 1).mean(0)
    diversity = torch.stack([head_diversity(a, 3) for a in attn], 1).mean(0)
    for name, metric, expected in (("attention_distance", "attention_distance_px", distance),
                                   ("attention_nmi", "nmi", nmi), ("attention_nmi", "head_diversity_jsd", diversity)):
        analyzer = get_analyzer(name).bind(oblong, {})
        analyzer.update(data)
        np.testing.assert_allclose(_values(analyzer.compute().table, metric), expected.reshape(-1).numpy(), rtol=1e-5)


def test_token_analyses_read_past_every_register(info):
    """A class token and 2 registers: cosine, spectra and Fourier profile of the patches alone."""
    registers = dataclasses.replace(info, num_prefix_tokens=3)
    data = _model_data(registers, 6, seed=1)
    tokens = [data["sites"][Site("tokens", layer)] for layer in range(registers.depth + 1)]
    fourier = get_analyzer("fourier").bind(registers, {})
    similarity = get_analyzer("token_similarity").bind(registers, {})
    for analyzer in (fourier, similarity):
        analyzer.update(data)
    expected = torch.stack([fourier_delta_log_amplitude(t, 3) for t in tokens], 1).mean(0)
    np.testing.assert_allclose(_values(fourier.compute().table, "delta_log_amplitude"),
                               expected.reshape(-1).numpy(), rtol=1e-5, atol=1e-6)
    table = similarity.compute().table
    cosine = torch.stack([token_cosine_similarity(t, 3) for t in tokens], 1).mean(0)
    np.testing.assert_allclose(_values(table, "token_cosine"), cosine.numpy(), rtol=1e-5, atol=1e-7)
    spectrum = torch.stack([token_covariance_log_spectrum(t, 3) for t in tokens], 1).mean(0)
    np.testing.assert_allclose(_values(table, "log_singular_value_token"), spectrum.reshape(-1).numpy(), rtol=1e-6)
    pooled = [torch.linalg.eigvalsh(torch.cov(t[:, 3:].mean(1).double().T)).flip(0).log()[:5] for t in tokens]
    image = _values(table, "log_singular_value_image").reshape(len(tokens), -1)
    np.testing.assert_allclose(image[:, :5], torch.stack(pooled).numpy(), rtol=1e-6)


def _probe_result(name, info, index, labels, **params):
    """``name`` on one batch of random layer-1 tokens: (result, warnings)."""
    tokens = torch.randn(len(index), info.num_tokens, info.embed_dim, generator=torch.Generator().manual_seed(3))
    batch = {"index": index, "labels": {"c": labels}, "sites": {Site("tokens", 1): tokens}}
    return compute_warned(name, info, batch, layers=[1], **params)


def test_fifty_held_out_images_are_enough_and_forty_nine_are_warned_of(info):
    """Fewer than 50 held-out images are warned of; exactly 50 are not."""
    pool = torch.arange(1000)
    held = heldout_mask(pool, 0.2, 0)
    for count, warned in ((49, True), (50, False)):
        index = torch.cat([pool[held][:count], pool[~held][:100]])
        _, said = _probe_result("knn", info, index, index % 2)
        assert any(f"only {count} held-out images" in s for s in said) == warned


def test_cls_pooling_on_a_model_without_a_class_token_is_refused(info):
    """Registers only (no class token): token 0 is no CLS token to pool."""
    registers = dataclasses.replace(info, class_token=False)
    with pytest.raises(ConfigError, match="pooling 'cls' needs a class token"):
        get_analyzer("knn", pooling="cls").bind(registers, {})


def test_a_label_with_no_training_image_has_no_majority_baseline(info):
    """Every training image unlabelled (-1) for label 'c': no commonest training class, so no
    baseline for it (and no error)."""
    index = torch.arange(100)
    labels = torch.where(heldout_mask(index, 0.2, 0), index % 2, -1)
    result, _ = _probe_result("knn", info, index, labels)
    assert "majority_class_top1" not in result.protocol


@pytest.mark.parametrize("value,expected", [("[1, 6, 12]", [1, 6, 12]), ("1,6,12", [1, 6, 12]), ("12", [12]),
                                            (12, [12]), ([3, 1], [3, 1]), (None, None)])
def test_block_lists_take_every_documented_form(value, expected):
    """'[1,6,12], 1,6,12 or 12 (null: every block)', as text from Python as well."""
    assert check_value("blocks", value) == expected


def test_a_text_parameter_takes_text_only():
    """str takes a str and refuses a number."""
    assert check_value(str, "cls") == "cls"
    with pytest.raises(ValueError):
        check_value(str, 5)


def test_only_sequences_of_ints_are_block_lists():
    """Sequence[int] | None is a block list; Sequence[str] | None is no kind --param can check."""
    assert _kind(Sequence[int] | None) == "blocks"
    assert _kind(Sequence[str] | None) is None


@pytest.mark.parametrize("name,params,message", [
    ("knn", {"heldout_fraction": 1.0}, "heldout_fraction=1.0 must lie strictly between 0 and 1"),
    ("linear_probe", {"C": 0.0}, "C must be a finite number > 0"),
    ("knn", {"T": math.inf}, "T must be a finite number > 0"),
    ("knn", {"pooling": "max"}, "pooling 'max' is not one of cls, mean"),
])
def test_probe_classes_built_directly_refuse_values_out_of_range(name, params, message):
    """The classes check their own values, as Python users may build them without get_analyzer."""
    with pytest.raises(ConfigError, match=message):
        analyzer_class(name)(**params)

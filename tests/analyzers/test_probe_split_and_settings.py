"""The probes' split, per-layer features, classifier settings and warnings, each against
vitprobe.metrics applied to the known split."""

from __future__ import annotations

import re

import pytest
import torch
from analyzer_inputs import PREFIX, WIDTH, compute_warned

from vitprobe.analyzers import get_analyzer
from vitprobe.analyzers._split import heldout_mask
from vitprobe.analyzers.probes import PROBE_TOL
from vitprobe.capture import Site
from vitprobe.errors import DataError
from vitprobe.metrics import fit_logistic, knn_predict


def _random_batch(n=200, classes=3, layers=(1,), seed=1):
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=gen)
    sites = {Site("tokens", layer): torch.randn(n, PREFIX + 16, WIDTH, generator=gen) for layer in layers}
    return {"index": torch.arange(n), "labels": {"c": labels}, "sites": sites}


def _accuracy(predicted: torch.Tensor, labels: torch.Tensor) -> float:
    return 100.0 * float((predicted == labels).double().mean())


def test_the_split_seed_and_fraction_choose_the_held_out_images(info):
    """split_seed=5, heldout_fraction=0.3: trained outside and scored on the images that
    hash(index, 5) < 0.3 picks (63 of 200, where seed 0 picks 60), in the table and protocol."""
    batch = _random_batch()
    held = heldout_mask(batch["index"], 0.3, 5)
    assert int(held.sum()) != int(heldout_mask(batch["index"], 0.3, 0).sum())
    result, _ = compute_warned("knn", info, batch, layers=[1], heldout_fraction=0.3, split_seed=5)
    x, y = batch["sites"][Site("tokens", 1)][:, 0], batch["labels"]["c"]
    expected = _accuracy(knn_predict(x[~held], y[~held], x[held], k=20, T=0.07), y[held])
    assert result.table["value"].tolist() == pytest.approx([expected])
    assert result.table["n"].tolist() == [int(held.sum())]
    assert result.protocol["held_out"] == f"{int(held.sum())} of 200 images"


@pytest.mark.parametrize("name", ["knn", "linear_probe"])
def test_the_majority_class_baseline_is_the_share_of_the_commonest_class_over_both_splits(info, name):
    """Labels drawn 60/30/10 over three classes, one unlabelled (-1) image in five: the protocol
    gives, per label, the share of all labelled images in the commonest class; a balanced
    four-way label gives exactly 25 whatever the split's uneven class counts (the training
    split's commonest class, scored on the held-out images, read below it)."""
    batch = _random_batch(n=300)
    gen = torch.Generator().manual_seed(7)
    skewed = torch.multinomial(torch.tensor([0.1, 0.6, 0.3]), 300, replacement=True, generator=gen)
    skewed[::5] = -1
    balanced = torch.arange(300) % 4
    batch["labels"] = {"c": skewed, "d": balanced}
    held = heldout_mask(batch["index"], 0.2, 0)
    train_counts = torch.bincount(balanced[~held], minlength=4)
    assert (balanced[held] == train_counts.argmax()).double().mean() < 0.25  # the old reading's bias
    result, _ = compute_warned(name, info, batch, layers=[1])
    known = skewed[skewed >= 0]
    expected = 100.0 * float((known == 1).double().mean())
    assert max(range(3), key=lambda c: int((known == c).sum())) == 1
    assert result.protocol["majority_class_top1"] == f"c: {expected:.3g}, d: 25"


def test_each_layers_accuracy_reads_that_layers_features(info):
    """Layer 1 random, layer 2 separable by class: each row is k-NN on its own layer."""
    batch = _random_batch(layers=(1, 2))
    y = batch["labels"]["c"]
    separable = torch.randn(200, PREFIX + 16, WIDTH) * 0.1
    separable[torch.arange(200), :, y] += 5.0
    batch["sites"][Site("tokens", 2)] = separable
    result, _ = compute_warned("knn", info, batch, layers=[1, 2])
    held = heldout_mask(batch["index"], 0.2)
    expected = []
    for layer in (1, 2):
        x = batch["sites"][Site("tokens", layer)][:, 0]
        expected.append(_accuracy(knn_predict(x[~held], y[~held], x[held], k=20, T=0.07), y[held]))
    assert expected[1] == 100.0 and expected[0] < 90
    assert result.table["layer"].tolist() == [1, 2]
    assert result.table["value"].tolist() == pytest.approx(expected)


@pytest.mark.parametrize("params, C, other_C", [({}, 1.0, 0.1), ({"C": 0.002}, 0.002, 1.0)])  # 1.0: scikit-learn's default
def test_the_linear_probe_is_fitted_with_its_C(info, params, C, other_C):
    batch = _random_batch(seed=5)
    result, _ = compute_warned("linear_probe", info, batch, layers=[1], **params)
    held = heldout_mask(batch["index"], 0.2)
    x, y = batch["sites"][Site("tokens", 1)][:, 0].double(), batch["labels"]["c"]
    probe = fit_logistic(x[~held], y[~held], C=C, max_iter=1000, tol=PROBE_TOL)
    expected = _accuracy(probe.predict(x[held]), y[held])
    other = fit_logistic(x[~held], y[~held], C=other_C, max_iter=1000, tol=PROBE_TOL)
    assert _accuracy(other.predict(x[held]), y[held]) != expected  # C changes the answer on these images
    assert result.table["value"].tolist() == pytest.approx([expected])


def test_knn_votes_with_its_temperature(info):
    batch = _random_batch()
    result, _ = compute_warned("knn", info, batch, layers=[1], T=5.0, k=50)
    held = heldout_mask(batch["index"], 0.2)
    x, y = batch["sites"][Site("tokens", 1)][:, 0], batch["labels"]["c"]
    expected = _accuracy(knn_predict(x[~held], y[~held], x[held], k=50, T=5.0), y[held])
    assert _accuracy(knn_predict(x[~held], y[~held], x[held], k=50, T=0.07), y[held]) != expected
    assert result.table["value"].tolist() == pytest.approx([expected])


@pytest.mark.parametrize("name", ["linear_probe", "knn"])
def test_a_training_split_of_one_class_has_no_accuracy(name, info):
    """Every training image of class 0, every held-out one of class 1: any classifier answers 0,
    so there is no accuracy (NaN, warned), not 0%."""
    batch = _random_batch()
    batch["labels"]["c"] = heldout_mask(batch["index"], 0.2).long()
    result, said = compute_warned(name, info, batch, layers=[1])
    assert result.table["value"].isna().all()
    assert any("the training split holds 1 class" in s for s in said)


def test_knn_warns_when_k_reaches_the_number_of_training_images(info):
    batch = _random_batch(n=60)
    train = int((~heldout_mask(batch["index"], 0.2)).sum())
    _, said = compute_warned("knn", info, batch, layers=[1], k=train)
    assert any(s.startswith(f"knn on label 'c': k = {train} neighbours of only {train} training images") for s in said)
    _, said = compute_warned("knn", info, batch, layers=[1], k=train - 1)
    assert not any("neighbours of only" in s for s in said)


def test_few_held_out_images_are_warned_with_what_one_image_moves(info):
    batch = _random_batch(n=60)
    held = int(heldout_mask(batch["index"], 0.2).sum())
    assert 5 <= held < 50
    _, said = compute_warned("knn", info, batch, layers=[1])
    assert any(re.search(rf"only {held} held-out images, so one image moves the accuracy by "
                         rf"{100 / held:.1f} points", s) for s in said)
    _, said = compute_warned("knn", info, _random_batch(n=400), layers=[1])  # about 80 held out
    assert not any("held-out images, so one image" in s for s in said)


def test_labels_that_change_between_batches_are_refused(info):
    batch = _random_batch(n=20)
    analyzer = get_analyzer("knn", layers=[1]).bind(info, {})
    analyzer.update(batch)
    with pytest.raises(DataError, match=r"labels changed between batches: \['c'\] then \['d'\]"):
        analyzer.update({**batch, "labels": {"d": batch["labels"]["c"]}})


@pytest.mark.parametrize("name", ["linear_probe", "knn"])
def test_images_that_share_an_index_are_warned_of_in_any_order(name, info):
    """Indices shared but not next to each other (shuffled data, or across shards): still found."""
    batch = _random_batch(n=60)
    batch["index"] = batch["index"] % 20  # each index given to three images, 20 apart
    _, said = compute_warned(name, info, batch, layers=[1])
    assert [s for s in said if re.match(rf"{name}: images share an 'index' \(20 shared values, e.g. 0\)", s)]


def test_final_norm_on_a_model_without_one_is_refused(info):
    """Else the features would silently be read without a norm while the protocol says final_norm."""
    import dataclasses

    from vitprobe.errors import ConfigError

    bare = dataclasses.replace(info, final_norm=None)
    with pytest.raises(ConfigError, match=r"^analysis 'knn': final_norm=True but this model has no final norm"):
        get_analyzer("knn", final_norm=True).bind(bare, {})

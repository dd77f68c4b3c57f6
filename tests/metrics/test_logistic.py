"""fit_logistic: scikit-learn's LogisticRegression optimum, found by L-BFGS in torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from vitprobe.metrics import MetricInputError, ShapeError, fit_logistic


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    return data.data, data.target


def _split(x, y, train=1200):
    return x[:train], y[:train], x[train:]


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("C", [1.0, 0.05])
def test_same_optimum_as_scikit_learn(digits, binary, C):
    """At a tight tolerance both solvers reach the one optimum: equal class probabilities."""
    x, y = digits
    y = y % 2 if binary else y
    train_x, train_y, test_x = _split(x, y)
    reference = make_pipeline(StandardScaler(), LogisticRegression(C=C, tol=1e-8, max_iter=10000))
    reference.fit(train_x, train_y)
    probe = fit_logistic(torch.from_numpy(train_x), torch.from_numpy(train_y), C=C, tol=1e-8, max_iter=10000)
    np.testing.assert_allclose(probe.predict_proba(torch.from_numpy(test_x)).numpy(),
                               reference.predict_proba(test_x), atol=1e-4)
    np.testing.assert_array_equal(probe.predict(torch.from_numpy(test_x)).numpy(), reference.predict(test_x))


def test_default_tolerance_meets_the_gradient_bound_by_autograd(digits):
    """The stopping rule checked independently: autograd's gradient of the objective at the
    returned weights is within tol (the fit computes its gradient by hand)."""
    x, y = digits
    train_x, train_y, _ = _split(x, y)
    C = 0.5
    probe = fit_logistic(torch.from_numpy(train_x), torch.from_numpy(train_y), C=C)
    assert probe.converged and 1 < probe.iterations < 1000
    weight = probe.weight.clone().requires_grad_(True)
    bias = probe.bias.clone().requires_grad_(True)
    features = (torch.from_numpy(train_x) - probe.mean) / probe.scale
    n = len(train_y)
    loss = (torch.nn.functional.cross_entropy(features @ weight + bias, torch.from_numpy(train_y))
            + weight.square().sum() / (2 * C * n))
    loss.backward()
    assert max(weight.grad.abs().max().item(), bias.grad.abs().max().item()) <= 1e-4


def test_default_tolerance_scores_as_scikit_learn_does(digits):
    x, y = digits
    train_x, train_y, test_x = _split(x, y)
    reference = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(train_x, train_y)
    probe = fit_logistic(torch.from_numpy(train_x), torch.from_numpy(train_y))
    ours = probe.predict(torch.from_numpy(test_x)).numpy()
    assert np.mean(ours == reference.predict(test_x)) >= 0.99


def test_labels_keep_their_values_and_constant_features_are_harmless():
    torch.manual_seed(0)
    labels = torch.tensor([3, 7] * 20)
    features = torch.randn(40, 5)
    features[:, 0] = labels.double() + 0.1 * torch.randn(40)  # informative
    features[:, 1] = 2.0  # constant: scale taken as 1
    probe = fit_logistic(features, labels)
    assert torch.equal(probe.classes, torch.tensor([3, 7]))
    assert probe.scale[1] == 1.0 and torch.isfinite(probe.weight).all()
    assert torch.equal(probe.predict(features), labels)


def test_an_unfinished_fit_says_so(digits):
    x, y = digits
    probe = fit_logistic(torch.from_numpy(x), torch.from_numpy(y), max_iter=2)
    assert not probe.converged and probe.iterations == 2


def test_bad_inputs_are_one_line_errors():
    features = torch.randn(6, 3)
    with pytest.raises(MetricInputError, match="at least 2 classes"):
        fit_logistic(features, torch.zeros(6, dtype=torch.long))
    with pytest.raises(ShapeError, match="6 feature rows and 5 labels"):
        fit_logistic(features, torch.tensor([0, 1, 0, 1, 0]))
    with pytest.raises(MetricInputError, match="integers"):
        fit_logistic(features, torch.tensor([0.0, 1.0] * 3))
    with pytest.raises(MetricInputError, match="C must be > 0"):
        fit_logistic(features, torch.tensor([0, 1] * 3), C=0.0)

"""The linear probe's classifier: L2-regularised multinomial logistic regression on
standardised features, fitted by L-BFGS in torch (on the analysis device).

It minimises scikit-learn's ``LogisticRegression(C, solver="lbfgs")`` objective, so both find
the same optimum (the objective is strictly convex in the weights): the tests check the
probabilities against scikit-learn's. Computed in torch, the fit runs where the features are
(a GPU when the analysis runs on one) and without scikit-learn's per-iteration overheads.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vitprobe.metrics._checks import MetricInputError, ShapeError, check_count, check_positive, check_rank

# L-BFGS settings of scikit-learn's lbfgs solver (scipy's L-BFGS-B): 10 corrections, strong
# Wolfe line search; stop when max |gradient| <= tol or after max_iter iterations.
_HISTORY = 10
_MAX_EVALS = 15000  # function evaluations at most, as scipy (line searches included)
_SCALE_FLOOR = 10 * torch.finfo(torch.float64).eps  # StandardScaler's "constant feature" bound


@dataclass(frozen=True)
class LogisticProbe:
    """A fitted probe: ``mean``/``scale`` standardise features, ``weight`` (d, K) and ``bias``
    (K,) give the logits of ``classes``; ``iterations`` run and whether max |grad| <= tol."""

    classes: torch.Tensor
    mean: torch.Tensor
    scale: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor
    iterations: int
    converged: bool

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """(m, K) logits of ``features`` (m, d); a binary probe's first column is 0."""
        x = (features.to(self.mean) - self.mean) / self.scale
        z = x @ self.weight + self.bias
        return torch.cat([torch.zeros_like(z), z], dim=1) if len(self.classes) == 2 else z

    def predict(self, features: torch.Tensor) -> torch.Tensor:
        """The class of each row of ``features``: ``classes[argmax logits]``."""
        return self.classes[self.logits(features).argmax(dim=1)]

    def predict_proba(self, features: torch.Tensor) -> torch.Tensor:
        """(m, K) class probabilities, ``softmax(logits)``, columns in ``classes`` order."""
        return torch.softmax(self.logits(features), dim=1)


def fit_logistic(features: torch.Tensor, labels: torch.Tensor, C: float = 1.0, max_iter: int = 1000,
                 tol: float = 1e-4) -> LogisticProbe:
    """Fit the probe on ``features`` (n, d) and integer ``labels`` (n,) of at least 2 classes.

    Features are standardised ``x = (f - mean) / std`` (train statistics; std 0 taken as 1).
    With one-hot targets Y over the K classes present, logits ``z = x W + b`` and
    ``L = mean_i [logsumexp(z_i) - <z_i, Y_i>] + ||W||^2 / (2 C n)`` (b unpenalised) is
    minimised by L-BFGS until ``max |grad L| <= tol`` or ``max_iter`` iterations. Two classes
    use one logit (the other fixed at 0), as scikit-learn's binary model does. float64 on
    the features' device.
    """
    check_rank(features, 2, "features (n, d)")
    check_rank(labels, 1, "labels (n,)")
    if labels.shape[0] != features.shape[0]:
        raise ShapeError(f"{features.shape[0]} feature rows and {labels.shape[0]} labels; give one label per row")
    if labels.is_floating_point() or labels.is_complex():
        raise MetricInputError("probe labels must be integers (class indices)")
    check_positive(C, "C", "scikit-learn's default is 1.0")
    check_count(max_iter, "max_iter", "scikit-learn's default is 100, vitprobe's 1000")
    check_positive(tol, "tol", "scikit-learn's default is 1e-4")
    x = features.to(torch.float64)
    classes, target = torch.unique(labels.to(x.device), return_inverse=True)
    if len(classes) < 2:
        raise MetricInputError(f"a probe needs at least 2 classes, these labels hold {len(classes)}")
    n, d = x.shape
    mean = x.mean(dim=0)
    scale = x.std(dim=0, correction=0)
    scale = torch.where(scale < _SCALE_FLOOR, torch.ones_like(scale), scale)
    x = (x - mean) / scale
    outputs = 1 if len(classes) == 2 else len(classes)
    weight = torch.zeros(d, outputs, dtype=x.dtype, device=x.device)
    bias = torch.zeros(outputs, dtype=x.dtype, device=x.device)
    onehot = torch.nn.functional.one_hot(target, len(classes)).to(x.dtype)[:, -outputs:]
    penalty = 1.0 / (C * n)

    def loss_and_grad() -> torch.Tensor:
        z = x @ weight + bias
        if outputs == 1:  # the logit of class 0 is fixed at 0
            z = torch.cat([torch.zeros_like(z), z], dim=1)
        log_norm = torch.logsumexp(z, dim=1)
        residual = (torch.exp(z - log_norm[:, None])[:, -outputs:] - onehot) / n
        weight.grad = x.T @ residual + penalty * weight
        bias.grad = residual.sum(dim=0)
        return (log_norm - z.gather(1, target[:, None])[:, 0]).mean() + 0.5 * penalty * weight.square().sum()

    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter, max_eval=max(_MAX_EVALS, 2 * max_iter),
                                  tolerance_grad=tol, tolerance_change=64 * torch.finfo(x.dtype).eps,
                                  history_size=_HISTORY, line_search_fn="strong_wolfe")
    with torch.no_grad():
        optimizer.step(loss_and_grad)
        loss_and_grad()
        converged = max(weight.grad.abs().max().item(), bias.grad.abs().max().item()) <= tol
    iterations = int(optimizer.state[weight].get("n_iter", 0))
    return LogisticProbe(classes, mean, scale, weight.detach(), bias.detach(), iterations, converged)

"""DINO's weighted k-nearest-neighbour classifier on frozen features."""

from __future__ import annotations

import torch

from vitprobe.metrics._checks import MetricInputError, ShapeError, check_count, check_positive, check_rank
from vitprobe.metrics.tokens import unit_rows

# Similarities held at once (16 MiB of float32): test rows are taken in chunks of
# _SIM_ELEMENTS // n_train, so memory does not grow with the number of images.
_SIM_ELEMENTS = 1 << 22


def knn_predict(train_feats: torch.Tensor, train_labels: torch.Tensor, test_feats: torch.Tensor,
                k: int = 20, T: float = 0.07, num_classes: int | None = None) -> torch.Tensor:
    """Predicted class of each test row, LongTensor (m,).

    Features are L2-normalised; ``sim = test @ train^T``; the top-k train rows (k capped at
    the train size) vote for their class with weight ``exp(sim / T)``; the class with the
    largest summed weight wins. Test rows go in chunks of at most 2^22 similarities.
    """
    check_rank(train_feats, 2, "train features (n, C)")
    check_rank(test_feats, 2, "test features (m, C)")
    check_rank(train_labels, 1, "train labels (n,)")
    if train_feats.shape[0] == 0 or train_labels.shape[0] != train_feats.shape[0]:
        raise ShapeError(f"k-NN needs train features and one label per row, got "
                         f"{train_feats.shape[0]} rows and {train_labels.shape[0]} labels")
    if test_feats.shape[1] != train_feats.shape[1]:
        raise ShapeError(f"test features have {test_feats.shape[1]} channels and train features "
                         f"{train_feats.shape[1]}; take both from the same layer and pooling")
    if train_labels.is_floating_point() or train_labels.is_complex() or int(train_labels.min()) < 0:
        raise MetricInputError("k-NN labels must be integers >= 0 (class indices); map them with "
                               "torch.unique(labels, return_inverse=True)")
    check_count(k, "k", "DINO uses 20")
    check_positive(T, "T", "DINO uses 0.07")
    if num_classes is None:
        num_classes = int(train_labels.max()) + 1
    elif int(train_labels.max()) >= num_classes:
        raise MetricInputError(f"label {int(train_labels.max())} is outside num_classes={num_classes}; "
                               "pass a larger num_classes or leave it None")
    train = unit_rows(train_feats.float())
    test = unit_rows(test_feats.float())
    k = min(int(k), train.shape[0])
    rows = max(1, _SIM_ELEMENTS // train.shape[0])
    predictions = []
    for start in range(0, test.shape[0], rows):
        sim = test[start:start + rows] @ train.T
        top_sim, top_idx = sim.topk(k, dim=1)
        weights = torch.exp(top_sim / T)
        votes = torch.zeros(sim.shape[0], num_classes, dtype=weights.dtype, device=weights.device)
        votes.scatter_add_(1, train_labels.to(weights.device)[top_idx], weights)
        predictions.append(votes.argmax(dim=1))
    if not predictions:
        return torch.zeros(0, dtype=torch.long, device=train.device)
    return torch.cat(predictions)

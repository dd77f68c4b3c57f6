"""DINO's weighted k-nearest-neighbour classifier on frozen features."""

from __future__ import annotations

import torch

from vitprobe.metrics._checks import ShapeError, check_rank
from vitprobe.metrics.tokens import unit_rows

_TEST_CHUNK = 1024


def knn_predict(train_feats: torch.Tensor, train_labels: torch.Tensor, test_feats: torch.Tensor,
                k: int = 20, T: float = 0.07, num_classes: int | None = None) -> torch.Tensor:
    """Predicted class of each test row, LongTensor (m,).

    Features are L2-normalised; ``sim = test @ train^T``; the top-k train rows (k capped at
    the train size) vote for their class with weight ``exp(sim / T)``; the class with the
    largest summed weight wins.
    """
    check_rank(train_feats, 2, "train features (n, C)")
    check_rank(test_feats, 2, "test features (m, C)")
    if train_feats.shape[0] == 0 or train_labels.shape[0] != train_feats.shape[0]:
        raise ShapeError(f"k-NN needs train features and one label per row, got "
                         f"{train_feats.shape[0]} rows and {train_labels.shape[0]} labels")
    if num_classes is None:
        num_classes = int(train_labels.max()) + 1
    train = unit_rows(train_feats.float())
    test = unit_rows(test_feats.float())
    k = min(int(k), train.shape[0])
    predictions = []
    for start in range(0, test.shape[0], _TEST_CHUNK):
        sim = test[start:start + _TEST_CHUNK] @ train.T
        top_sim, top_idx = sim.topk(k, dim=1)
        weights = torch.exp(top_sim / T)
        votes = torch.zeros(sim.shape[0], num_classes, dtype=weights.dtype, device=weights.device)
        votes.scatter_add_(1, train_labels.to(weights.device)[top_idx], weights)
        predictions.append(votes.argmax(dim=1))
    if not predictions:
        return torch.zeros(0, dtype=torch.long, device=train.device)
    return torch.cat(predictions)

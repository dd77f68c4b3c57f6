"""Contrastive maths shared by MoCo v3 and GMML."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from vitprobe.train.objectives.base import concat_all_gather, rank


def info_nce(q: Tensor, k: Tensor, temperature: float) -> Tensor:
    """MoCo v3 InfoNCE scaled by 2T: 2T * mean_i CE(q_i . K^T / T, i), q and k L2-normalised.

    K is ``k`` gathered from every process; the positive of query i of this process is
    key ``i + rank * B``.
    """
    q = F.normalize(q, dim=1)
    keys = concat_all_gather(F.normalize(k, dim=1))
    logits = q @ keys.t() / temperature
    labels = torch.arange(q.shape[0], device=q.device) + rank() * q.shape[0]
    return F.cross_entropy(logits, labels) * (2 * temperature)


@torch.no_grad()
def embedding_std(z: Tensor) -> float:
    """Std over the batch of L2-normalised embeddings, averaged over dims (~1/sqrt(d) healthy, 0 collapsed)."""
    z = concat_all_gather(F.normalize(z.float(), dim=1))
    return float(z.std(dim=0).mean()) if z.shape[0] > 1 else 0.0

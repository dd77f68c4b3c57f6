"""Contrastive maths, views and momentum branch shared by MoCo v3 and GMML (SiT)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from vitprobe.distributed import concat_all_gather, rank_and_world
from vitprobe.train.objectives.base import Objective, frozen_copy
from vitprobe.train.views import ViewSpec


def byol_view_specs(size: int, scale: tuple[float, float]) -> list[ViewSpec]:
    """The two asymmetric views of BYOL / MoCo v3: blur always on the first; blur 0.1 and solarise 0.2 on the second."""
    return [ViewSpec(size, scale=scale, blur_p=1.0), ViewSpec(size, scale=scale, blur_p=0.1, solarize_p=0.2)]


class MomentumContrast(Objective):
    """An objective whose keys come from EMA copies of its encoder and ``projector``, on the two
    BYOL views: :meth:`_add_momentum_branch` makes the copies once the online modules exist."""

    projector: nn.Module

    def _add_momentum_branch(self, out_dim: int, crop_scale: tuple[float, float]) -> None:
        """Frozen copies of the encoder and projector (EMA-updated by the engine through
        :meth:`momentum_pairs`); the collapse check reads the ``out_dim`` embeddings."""
        self.momentum_encoder = frozen_copy(self.encoder)
        self.momentum_projector = frozen_copy(self.projector)
        self.collapse_dim = out_dim
        self.view_specs = byol_view_specs(self.arch.img_size, crop_scale)

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.encoder, self.momentum_encoder), (self.projector, self.momentum_projector)]


def info_nce(q: Tensor, k: Tensor, temperature: float) -> Tensor:
    """MoCo v3 InfoNCE scaled by 2T: 2T * mean_i CE(q_i . K^T / T, i), q and k L2-normalised.

    K is ``k`` gathered from every process; the positive of query i of this process is
    key ``i + rank * B``.
    """
    q = F.normalize(q, dim=1)
    keys = concat_all_gather(F.normalize(k, dim=1))
    logits = q @ keys.t() / temperature
    labels = torch.arange(q.shape[0], device=q.device) + rank_and_world()[0] * q.shape[0]
    return F.cross_entropy(logits, labels) * (2 * temperature)


@torch.no_grad()
def embedding_std(z: Tensor) -> float:
    """Std over the batch of L2-normalised embeddings, averaged over dims (~1/sqrt(d) healthy, 0 collapsed)."""
    z = concat_all_gather(F.normalize(z.float(), dim=1))
    return float(z.std(dim=0).mean()) if z.shape[0] > 1 else 0.0

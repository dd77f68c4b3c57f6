"""MoCo v3: symmetric InfoNCE between an online ViT + projector + predictor and a momentum copy (Chen et al. 2021)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from vitprobe.models.architecture import ArchSpec
from vitprobe.train.heads import bn_mlp
from vitprobe.train.objectives._encoder_init import ENCODER_INITS, mocov3_encoder
from vitprobe.train.objectives._infonce import MomentumContrast, embedding_std, info_nce
from vitprobe.train.objectives._vit import check_encoder, cls_features
from vitprobe.train.objectives.base import StepInfo, register_objective
from vitprobe.train.views import make_views


@register_objective
class MoCoV3(MomentumContrast):
    """L = ctr(q1, k2) + ctr(q2, k1), q = predictor(projector(cls)), k from the momentum encoder + projector.

    ``stop_grad_patch_embed`` freezes the random patch projection (the paper's stability trick).
    ``encoder_init`` "reference" sets the encoder up as MoCo v3's ViT (frozen 2-D sin-cos
    positions, Xavier weights: :func:`mocov3_encoder`); "timm" keeps timm's learned position
    embedding and initialisation.
    """

    name = "mocov3"
    loss_text = ("InfoNCE x 2T, T {temperature}, of the predictor's queries on the momentum keys, both view "
                 "orders summed")
    published_epochs = 300  # MoCo v3 ViT-S/B, 300 epochs
    revision = 4  # 2: the predictor's final BatchNorm; 3: weight decay on every tensor; 4: encoder_init
    decay_1d = True  # main_moco.py: AdamW(model.parameters(), weight_decay=...) for the ViTs
    min_batch_size = 2  # the projector's and predictor's BatchNorm need two images
    defaults = dict(
        base_lr=1.5e-4, min_lr=0.0, lr_drop=None, warmup_epochs=40, weight_decay=0.1, weight_decay_end=0.1,
        momentum=0.99, betas=(0.9, 0.999), clip_grad=None, drop_path=0.0,
        proj_hidden_dim=4096, pred_hidden_dim=4096, out_dim=256, temperature=0.2,
        stop_grad_patch_embed=True, crop_scale=(0.08, 1.0), encoder_init="reference",
    )
    choices = {"encoder_init": ENCODER_INITS}

    def __init__(self, encoder: nn.Module, arch: ArchSpec, **hparams: Any):
        super().__init__(encoder, arch, **hparams)
        check_encoder(encoder, self.name)
        h = self.hparams
        if h["encoder_init"] == "reference":
            mocov3_encoder(encoder)
        if h["stop_grad_patch_embed"]:
            encoder.patch_embed.proj.requires_grad_(False)
        self.projector = bn_mlp(3, encoder.embed_dim, h["proj_hidden_dim"], h["out_dim"])
        self.predictor = bn_mlp(2, h["out_dim"], h["pred_hidden_dim"], h["out_dim"])
        self._add_momentum_branch(h["out_dim"], h["crop_scale"])

    def views(self, image: Tensor, g: torch.Generator) -> dict[str, Tensor]:
        """{"views": (2, 3, S, S)}."""
        return {"views": make_views(image, self.view_specs, g)}

    def forward(self, views: dict[str, Tensor], step: StepInfo) -> tuple[Tensor, dict[str, float]]:
        x1, x2 = views["views"].unbind(1)
        q1 = self.predictor(self.projector(cls_features(self.encoder, x1)))
        q2 = self.predictor(self.projector(cls_features(self.encoder, x2)))
        with torch.no_grad():
            k1 = self.momentum_projector(cls_features(self.momentum_encoder, x1))
            k2 = self.momentum_projector(cls_features(self.momentum_encoder, x2))
        t = self.hparams["temperature"]
        loss = info_nce(q1, k2, t) + info_nce(q2, k1, t)
        return loss, {"loss": loss.item(), "emb_std": embedding_std(q1)}

"""GMML / SiT: reconstruct the clean image from groups of corrupted patches, plus a contrastive loss
on class tokens against a momentum encoder of the clean views (Atito et al. 2021, 2022)."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from vitprobe.models.architecture import ArchSpec
from vitprobe.train.heads import PixelDecoder, bn_mlp, init_trunc_normal
from vitprobe.train.masking import group_mask, upsample_mask
from vitprobe.train.objectives._encoder_init import ENCODER_INITS, dino_encoder
from vitprobe.train.objectives._infonce import MomentumContrast, embedding_std, info_nce
from vitprobe.train.objectives._vit import check_encoder, cls_features, encode
from vitprobe.train.objectives.base import StepInfo, register_objective
from vitprobe.train.objectives.simmim import masked_l1
from vitprobe.train.views import make_views


def corrupt(clean: Tensor, pixel_mask: Tensor, noise: Tensor, from_other: Tensor) -> Tensor:
    """Masked pixels take, per image, either ``noise`` or the pixels of the previous image of the
    batch (cyclic: image i takes image i - 1's).

    ``pixel_mask`` (B, 1, H, W) bool, ``from_other`` (B,) bool.
    """
    source = torch.where(from_other.view(-1, 1, 1, 1), clean.roll(1, dims=0), noise)
    return torch.where(pixel_mask, source, clean)


@register_objective
class GMML(MomentumContrast):
    """L = alpha * L1(recon, clean | corrupted pixels) + ctr(s1, t2) + ctr(s2, t1) (InfoNCE, 2T scaled).

    As SiT (Sara-Ahmed/SiT, main.py / datasets/datasets_utils.py): each view is corrupted,
    per image, either (probability ``replace_prob``) by pasting the same-place pixels of
    another image over a group mask of ``replace_ratio`` of the patches, or else by N(0, 1)
    noise (SiT's code defaults to zeros; the SiT and GMML papers describe noise) over a group
    mask of ``mask_ratio``. The L1 is one mean over the corrupted pixels and channels of BOTH
    views pooled: sum_v sum |rec_v - clean_v| m_v / (3 * sum_v sum m_v). s_v = projector(CLS of
    corrupted view v), t_v = momentum projector(momentum CLS of clean view v); both views go
    through each projector as one batch, so its BatchNorm statistics span 2B samples.
    ``encoder_init`` "reference" draws the class token as SiT's ViT does (:func:`dino_encoder`);
    "timm" keeps timm's. The projector's and the decoder's hidden Linears start as SiT's heads'
    (truncated N(0, 0.02^2), bias 0), and the decoder's last map as SiT's transposed convolution
    (weight and bias ~ U(+-1/sqrt(3 p^2))).
    """

    name = "gmml"
    loss_text = ("{alpha:g} x L1 on the corrupted pixels + InfoNCE x 2T, T {temperature}, of the class tokens, "
                 "both view orders")
    published_epochs = 800  # SiT, 800 epochs
    revision = 4  # 2: rectangles drawn until at least h w ratio patches are masked; 3: weight decay on
    # position embedding and class token (SiT's get_params_groups spares only 1-d tensors); 4: encoder_init,
    # SiT's head initialisation
    per_tensor_clip = True  # SiT clips each gradient tensor separately, as DINO does
    defaults = dict(
        base_lr=5e-4, min_lr=1e-6, lr_drop=None, warmup_epochs=10, weight_decay=0.04, weight_decay_end=0.1,
        momentum=0.996, betas=(0.9, 0.999), clip_grad=3.0, drop_path=0.1,
        mask_ratio=0.5, replace_ratio=0.3, max_block=0.3, replace_prob=0.5, alpha=1.0, temperature=0.2,
        proj_hidden_dim=4096, out_dim=256, decoder_hidden_dim=None, decoder_hidden_layers=3, crop_scale=(0.2, 1.0),
        encoder_init="reference",
    )
    choices = {"encoder_init": ENCODER_INITS}

    def __init__(self, encoder: nn.Module, arch: ArchSpec, **hparams: Any):
        super().__init__(encoder, arch, **hparams)
        check_encoder(encoder, self.name)
        h = self.hparams
        if h["encoder_init"] == "reference":
            dino_encoder(encoder)
        # SiT's CLSHead: Linear-BN-ReLU, Linear-BN-GELU, Linear-BN
        self.projector = bn_mlp(3, encoder.embed_dim, h["proj_hidden_dim"], h["out_dim"],
                                activations=(nn.ReLU, nn.GELU))
        self.decoder = PixelDecoder(encoder.embed_dim, arch.patch_size,
                                    h["decoder_hidden_dim"] or encoder.embed_dim, h["decoder_hidden_layers"])
        self.projector.apply(init_trunc_normal)
        self.decoder.proj[:-1].apply(init_trunc_normal)
        # SiT's last map is ConvTranspose2d(width, 3, p, stride p), whose PyTorch init draws weight and
        # bias from U(+-1/sqrt(fan_in)) with fan_in = 3 p^2 (its second axis times the kernel)
        last = self.decoder.proj[-1]
        bound = 1.0 / math.sqrt(last.out_features)
        nn.init.uniform_(last.weight, -bound, bound)
        nn.init.uniform_(last.bias, -bound, bound)
        self._add_momentum_branch(h["out_dim"], h["crop_scale"])

    def views(self, image: Tensor, g: torch.Generator) -> dict[str, Tensor]:
        """{"clean": (2, 3, S, S), "mask": bool (2, h, w) group masks, "noise": (2, 3, S, S) N(0, 1),
        "from_other": bool (2,) corrupt with another image instead of noise}; a view's mask
        covers ``replace_ratio`` of the patches when ``from_other``, else ``mask_ratio``."""
        h, a = self.hparams, self.arch
        clean = make_views(image, self.view_specs, g)
        from_other = torch.rand(2, generator=g) < h["replace_prob"]
        masks = torch.stack([group_mask(a.grid, h["replace_ratio"] if other else h["mask_ratio"], g,
                                        h["max_block"]) for other in from_other.tolist()])
        noise = torch.randn(clean.shape, generator=g)
        return {"clean": clean, "mask": masks, "noise": noise, "from_other": from_other}

    def _corrupted(self, views: dict[str, Tensor], v: int) -> tuple[Tensor, Tensor]:
        """View ``v`` corrupted within its own batch, and its pixel mask (B, 1, S, S)."""
        pixel_mask = upsample_mask(views["mask"][:, v], self.arch.patch_size).unsqueeze(1)
        return corrupt(views["clean"][:, v], pixel_mask, views["noise"][:, v],
                       views["from_other"][:, v]), pixel_mask

    def reconstruct(self, views: dict[str, Tensor], v: int | tuple[int, ...] = 0) -> dict[str, Tensor]:
        """View ``v`` of a batch (or views ``v``, concatenated along the batch and encoded in one
        call): the corrupted input, the encoder tokens, the reconstruction and the pixel mask of
        the corrupted groups (B, 1, S, S) per view."""
        inputs, masks = zip(*(self._corrupted(views, i) for i in ((v,) if isinstance(v, int) else v)))
        x = torch.cat(inputs)
        tokens = encode(self.encoder, x)
        rec = self.decoder(tokens[:, self.encoder.num_prefix_tokens:], self.arch.grid)
        return {"corrupted": x, "tokens": tokens, "reconstruction": rec, "pixel_mask": torch.cat(masks)}

    def forward(self, views: dict[str, Tensor], step: StepInfo) -> tuple[Tensor, dict[str, float]]:
        out = self.reconstruct(views, (0, 1))
        clean = torch.cat([views["clean"][:, 0], views["clean"][:, 1]])
        recon_loss = masked_l1(out["reconstruction"], clean, out["pixel_mask"])
        student = self.projector(out["tokens"][:, 0]).chunk(2)
        with torch.no_grad():
            teacher = self.momentum_projector(cls_features(self.momentum_encoder, clean)).chunk(2)
        t = self.hparams["temperature"]
        contrastive = info_nce(student[0], teacher[1], t) + info_nce(student[1], teacher[0], t)
        loss = self.hparams["alpha"] * recon_loss + contrastive
        return loss, {"loss": loss.item(), "recon_loss": recon_loss.item(),
                      "contrastive_loss": contrastive.item(), "emb_std": embedding_std(student[0])}

"""SimMIM: masked patch embeddings replaced by a learned token; a linear decoder predicts the pixels (Xie et al. 2022)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn as nn
from timm.layers import trunc_normal_
from torch import Tensor

from vitprobe.models.architecture import ArchSpec
from vitprobe.train.heads import PixelDecoder
from vitprobe.train.masking import block_mask, upsample_mask
from vitprobe.errors import ConfigError
from vitprobe.train.objectives._encoder_init import ENCODER_INITS, SIMMIM_VIT, simmim_encoder, simmim_trunc_normal
from vitprobe.train.objectives._vit import check_encoder, embed_patches, encode_patch_tokens
from vitprobe.train.objectives.base import Objective, StepInfo, register_objective
from vitprobe.train.views import ViewSpec, make_view


def masked_l1(pred: Tensor, target: Tensor, pixel_mask: Tensor) -> Tensor:
    """sum |pred - target| over masked pixels and channels / (#masked pixels x channels).

    ``pixel_mask`` is (B, 1, H, W), 1 where the pixel was masked.
    """
    m = pixel_mask.to(pred.dtype)
    return ((pred - target).abs() * m).sum() / (m.sum() * pred.shape[1]).clamp_min(1e-5)


@register_objective
class SimMIM(Objective):
    """Block-masked image modelling with a linear (1x1-conv) + pixel-shuffle decoder and L1 on masked pixels."""

    name = "simmim"
    loss_text = "L1 on the masked patches' pixels, mask ratio {mask_ratio} in {mask_patch_size}-px mask patches"
    published_epochs = 800  # SimMIM ViT-B, 800 epochs
    revision = 7  # 2: ceil(M ratio) masked cells; 3: the ViT recipe's lr drop, its weight-decay groups; 4: warmup_lr;
    # 5: SimMIM's own ViT (encoder_init); 6: its truncation of the initial weights at +-1 std; 7: the tiny
    # preset's warmup_lr at 1/200 of its base_lr
    no_decay_names = frozenset({"pos_embed", "cls_token"})  # SimMIM's ViT no_weight_decay(); its mask token decays
    defaults = dict(  # the ViT-B 800-epoch config: warm-up 10 from WARMUP_LR, then x0.1 at epoch 700 (lr_drop);
        # its BASE_LR 1e-4 and WARMUP_LR 5e-7 are per 512 images
        base_lr=5e-5, warmup_lr=2.5e-7, min_lr=None, lr_drop=(0.875, 0.1), warmup_epochs=10,
        weight_decay=0.05, weight_decay_end=0.05,
        momentum=None, betas=(0.9, 0.999), clip_grad=5.0,
        drop_path=0.1, mask_ratio=0.6, mask_patch_size=32, crop_scale=(0.67, 1.0), encoder_init="reference",
    )
    choices = {"encoder_init": ENCODER_INITS}

    @classmethod
    def encoder_arch(cls, arch: ArchSpec, hparams: Mapping[str, Any]) -> ArchSpec:
        """SimMIM's ViT (timm's BEiT layout, :data:`SIMMIM_VIT`) of ``arch``'s size with
        ``encoder_init`` "reference"; ``arch`` as it is with "timm"."""
        if hparams["encoder_init"] != "reference":
            return arch
        if arch.reg_tokens or arch.global_pool != "token" or arch.fc_norm:
            raise ConfigError("objective 'simmim': its reference ViT has a class token and no register tokens or "
                              "pooled norm; choose a plain ViT, or --set encoder_init=timm to train this one")
        return arch.replace(**SIMMIM_VIT)

    def __init__(self, encoder: nn.Module, arch: ArchSpec, **hparams: Any):
        super().__init__(encoder, arch, **hparams)
        h = self.hparams
        reference = h["encoder_init"] == "reference"
        check_encoder(encoder, self.name, beit=reference)
        block_mask(arch.img_size, arch.patch_size, h["mask_patch_size"], h["mask_ratio"],
                   torch.Generator().manual_seed(0))  # rejects a bad mask geometry now, not in a worker
        self.mask_token = nn.Parameter(torch.zeros(1, 1, encoder.embed_dim))
        if reference:  # SimMIM's ViT and its mask token, as its code draws them
            simmim_encoder(encoder)
            simmim_trunc_normal(self.mask_token)
        else:
            trunc_normal_(self.mask_token, std=0.02)
        self.decoder = PixelDecoder(encoder.embed_dim, arch.patch_size)
        self.view_spec = ViewSpec(arch.img_size, scale=h["crop_scale"], jitter_p=0.0, grey_p=0.0)

    def views(self, image: Tensor, g: torch.Generator) -> dict[str, Tensor]:
        """{"image": (3, S, S) crop + flip, "mask": bool (h, w) block mask over model patches}."""
        h, a = self.hparams, self.arch
        return {"image": make_view(image, self.view_spec, g),
                "mask": block_mask(a.img_size, a.patch_size, h["mask_patch_size"], h["mask_ratio"], g)}

    def reconstruct(self, images: Tensor, mask: Tensor) -> Tensor:
        """Predicted image (B, 3, S, S) from the encoder run with masked embeddings replaced by the mask token."""
        tokens, grid = embed_patches(self.encoder, images)
        w = mask.flatten(1).unsqueeze(-1).to(tokens.dtype)
        out = encode_patch_tokens(self.encoder, tokens * (1 - w) + self.mask_token * w, grid)
        return self.decoder(out[:, -grid[0] * grid[1]:], grid)

    def forward(self, views: dict[str, Tensor], step: StepInfo) -> tuple[Tensor, dict[str, float]]:
        images, mask = views["image"], views["mask"]
        pred = self.reconstruct(images, mask)
        loss = masked_l1(pred, images, upsample_mask(mask, self.arch.patch_size).unsqueeze(1))
        return loss, {"loss": loss.item(), "recon_loss": loss.item()}

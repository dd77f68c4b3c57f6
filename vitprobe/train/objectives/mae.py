"""MAE: the encoder sees a random 25% of the patches; a light decoder predicts the hidden ones (He et al. 2022)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from vitprobe.errors import ConfigError
from vitprobe.models.architecture import ArchSpec
from vitprobe.train.heads import MAEDecoder
from vitprobe.train.masking import random_mask
from vitprobe.train.objectives._encoder_init import ENCODER_INITS, mae_encoder
from vitprobe.train.objectives._vit import (check_encoder, embed_patches, patch_positions, prefix_tokens,
                                            run_blocks)
from vitprobe.train.objectives.base import Objective, StepInfo, register_objective
from vitprobe.train.views import ViewSpec, make_view


def patchify(images: Tensor, patch: int) -> Tensor:
    """(B, 3, h p, w p) -> (B, h w, p p 3), raster order of patches, (row, col, channel) inside a patch."""
    b, c, hp, wp = images.shape
    h, w = hp // patch, wp // patch
    x = images.reshape(b, c, h, patch, w, patch)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, h * w, patch * patch * c)


def masked_mse(pred: Tensor, target: Tensor, mask: Tensor, norm_pix: bool) -> Tensor:
    """sum_masked mean_d (pred - target)^2 / #masked; with ``norm_pix`` each target patch is standardised
    by its own mean and unbiased variance: (t - mu) / sqrt(var + 1e-6)."""
    if norm_pix:
        mu = target.mean(-1, keepdim=True)
        var = target.var(-1, keepdim=True)
        target = (target - mu) / (var + 1e-6).sqrt()
    per_patch = ((pred - target) ** 2).mean(-1)
    m = mask.to(per_patch.dtype)
    return (per_patch * m).sum() / m.sum()


@register_objective
class MAE(Objective):
    """Masked autoencoder with a transformer decoder and fixed sin-cos decoder positions.

    ``encoder_init`` "reference" sets the encoder up as MAE's (frozen 2-D sin-cos positions,
    Xavier weights: :func:`mae_encoder`); "timm" keeps timm's learned position embedding and
    initialisation.
    """

    name = "mae"
    loss_text = "MSE on the hidden patches' {pixels}, mask ratio {mask_ratio}"
    published_epochs = 800  # MAE's 800-epoch pre-training
    revision = 4  # 2: N - int(N (1 - ratio)) masked patches; 3: weight decay on class and mask tokens;
    # 4: encoder_init, and the decoder's Linears Xavier-initialised
    defaults = dict(
        base_lr=1.5e-4, min_lr=0.0, lr_drop=None, warmup_epochs=40, weight_decay=0.05, weight_decay_end=0.05,
        momentum=None, betas=(0.9, 0.95), clip_grad=None, drop_path=0.0,
        mask_ratio=0.75, decoder_dim=512, decoder_depth=8, decoder_heads=16, norm_pix_loss=True,
        crop_scale=(0.2, 1.0), encoder_init="reference",
    )
    choices = {"encoder_init": ENCODER_INITS}

    @classmethod
    def describe_loss(cls, hparams: Mapping[str, Any]) -> str:
        """``loss_text``, naming the targets: pixels normalised per patch (norm_pix_loss) or raw."""
        pixels = "per-patch normalised pixels" if hparams["norm_pix_loss"] else "raw pixels"
        return cls.loss_text.format_map({**hparams, "pixels": pixels})

    @classmethod
    def resolve_hparams(cls, given: dict[str, Any], via: str | None = None) -> dict[str, Any]:
        """As every objective's, and the decoder's width divisible by its heads and by 4 (its 2-D
        sin-cos position embedding gives each axis a sine and a cosine half of half the width)."""
        h = super().resolve_hparams(given, via)
        dim, heads = h["decoder_dim"], h["decoder_heads"]
        step = math.lcm(heads, 4)
        if dim % step:
            where = f" (in {via})" if via else ""
            raise ConfigError(f"objective 'mae'{where}: decoder_dim {dim} must be divisible by decoder_heads {heads} "
                              f"and by 4 (MAE: 512 and 16); e.g. decoder_dim={max(step, round(dim / step) * step)}")
        return h

    def __init__(self, encoder: nn.Module, arch: ArchSpec, **hparams: Any):
        super().__init__(encoder, arch, **hparams)
        check_encoder(encoder, self.name)
        h = self.hparams
        if h["encoder_init"] == "reference":
            mae_encoder(encoder)
        self.decoder = MAEDecoder(encoder.embed_dim, arch.grid, arch.patch_size, encoder.num_prefix_tokens,
                                  h["decoder_dim"], h["decoder_depth"], h["decoder_heads"])
        self.view_spec = ViewSpec(arch.img_size, scale=h["crop_scale"], jitter_p=0.0, grey_p=0.0)

    def views(self, image: Tensor, g: torch.Generator) -> dict[str, Tensor]:
        """{"image": (3, S, S) crop + flip, "mask": bool (N,) with N - int(N * (1 - mask_ratio)) True}."""
        h = self.hparams
        n = self.arch.grid[0] * self.arch.grid[1]
        return {"image": make_view(image, self.view_spec, g),
                "mask": random_mask(n, h["mask_ratio"], g)}

    def reconstruct(self, images: Tensor, mask: Tensor) -> Tensor:
        """Predicted pixels (B, N, p p 3) of every patch, the encoder run on visible patches + prefix only."""
        counts = mask.sum(1)
        if bool((counts != counts[0]).any()):
            raise ConfigError("mae: every image of a batch must hide the same number of patches; "
                              "build masks with vitprobe.train.masking.random_mask")
        tokens, grid = embed_patches(self.encoder, images)
        tokens = tokens + patch_positions(self.encoder, grid)
        order = torch.argsort(mask.to(torch.int8), dim=1, stable=True)
        restore = torch.argsort(order, dim=1)
        keep = order[:, :mask.shape[1] - int(counts[0])]
        visible = torch.gather(tokens, 1, keep.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))
        latent = run_blocks(self.encoder, torch.cat([prefix_tokens(self.encoder, len(images)), visible], 1))
        return self.decoder(latent, restore)

    def forward(self, views: dict[str, Tensor], step: StepInfo) -> tuple[Tensor, dict[str, float]]:
        images, mask = views["image"], views["mask"]
        pred = self.reconstruct(images, mask)
        loss = masked_mse(pred, patchify(images, self.arch.patch_size), mask, self.hparams["norm_pix_loss"])
        return loss, {"loss": loss.item(), "recon_loss": loss.item()}

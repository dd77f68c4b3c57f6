"""The encoder set-ups of the references: MoCo v3's and MAE's frozen 2-D sin-cos position
embedding and Xavier weights; DINO's and SiT's class token.

Both references replace timm's learned position embedding with fixed sin-cos positions (zero
at the class token, ``requires_grad`` False) and re-initialise every Linear with Xavier
uniform and the patch projection as a Linear of fan-in 3 p^2. They differ in details, each
reproduced: MoCo v3 (vits.py) puts the row's channels first, takes Q, K and V as three
(C, C) maps, zeroes the projection bias and draws the class token from N(0, 1e-6^2); MAE
(models_mae.py) puts the column's channels first, takes the fused qkv as one map, keeps the
projection bias of PyTorch's Conv2d and draws the class token from N(0, 0.02^2). DINO and SiT
(vision_transformer.py) initialise as timm does (truncated N(0, 0.02^2) Linear weights and
position embedding, zero biases, PyTorch's patch projection) but for the class token, which
they draw from N(0, 0.02^2) where timm draws from N(0, 1e-6^2). SimMIM's ViT
(models/vision_transformer.py, its ViT-B config) is another architecture, timm's BEiT layout
(:data:`SIMMIM_VIT`): no absolute position embedding, one relative position bias shared by
all blocks (zero at init), layer scale 0.1, Q and V biases only. Its initialisation differs
from timm's Beit in the truncation: SimMIM's ``_trunc_normal_`` cuts N(0, 0.02^2) at +-1 std
(``a=-std, b=std``; effective std 0.0108) where timm cuts at +-2 absolute (none in effect), for
every Linear weight, the patch projection (timm leaves PyTorch's), the class and mask tokens;
biases 0; then the attention and MLP output maps of block l divided by sqrt(2 l).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from timm.layers import trunc_normal_
from timm.models.vision_transformer import VisionTransformer

from vitprobe.errors import ConfigError
from vitprobe.train.heads import sincos_pos_embed_2d
from vitprobe.train.objectives._vit import pos_split

ENCODER_INITS = ("reference", "timm")
# SimMIM's ViT-B pre-training config: USE_APE False, USE_SHARED_RPB True, INIT_VALUES 0.1
SIMMIM_VIT = {"family": "beit", "abs_pos_emb": False, "rel_pos_bias": "shared", "layer_scale": 0.1}


def _xavier_bound(fan_in: int, fan_out: int) -> float:
    return math.sqrt(6.0 / (fan_in + fan_out))


@torch.no_grad()
def freeze_sincos_positions(encoder: VisionTransformer, objective: str, rows_first: bool) -> None:
    """pos_embed <- [0 for each prefix token that has a position; sin-cos of the patch grid]
    (:func:`sincos_pos_embed_2d`), excluded from training (``requires_grad`` False)."""
    width = encoder.embed_dim
    if width % 4:
        raise ConfigError(f"objective {objective!r}: its reference encoder fixes a 2-D sin-cos position embedding, "
                          f"which needs a width divisible by 4, not {width}; choose another width or "
                          f"--set encoder_init=timm (a learned position embedding; in a hybrid, inside "
                          f"that branch's hparams)")
    grid = tuple(encoder.patch_embed.grid_size)
    pos = sincos_pos_embed_2d(width, grid, rows_first=rows_first)
    prefix = torch.zeros(pos_split(encoder), width)
    encoder.pos_embed.copy_(torch.cat([prefix, pos]).unsqueeze(0))
    encoder.pos_embed.requires_grad_(False)


@torch.no_grad()
def xavier_weights(encoder: VisionTransformer, split_qkv: bool) -> None:
    """Every Linear ~ U(-a, a), a = sqrt(6 / (fan_in + fan_out)), bias 0; with ``split_qkv`` the
    fused qkv weight takes fan_out = its rows / 3. The patch projection (C, 3, p, p) likewise
    with fan_in = 3 p^2, fan_out = C; its bias is left as it is."""
    for name, module in encoder.named_modules():
        if isinstance(module, nn.Linear):
            rows, cols = module.weight.shape
            if split_qkv and name.rsplit(".", 1)[-1] == "qkv":
                rows //= 3
            bound = _xavier_bound(cols, rows)
            module.weight.uniform_(-bound, bound)
            if module.bias is not None:
                module.bias.zero_()
    proj = encoder.patch_embed.proj.weight
    bound = _xavier_bound(proj[0].numel(), proj.shape[0])
    proj.uniform_(-bound, bound)


@torch.no_grad()
def mocov3_encoder(encoder: VisionTransformer) -> None:
    """MoCo v3's VisionTransformerMoCo: rows-first sin-cos positions, Xavier with Q, K, V apart,
    projection bias 0, class token ~ N(0, 1e-6^2)."""
    freeze_sincos_positions(encoder, "mocov3", rows_first=True)
    xavier_weights(encoder, split_qkv=True)
    if encoder.patch_embed.proj.bias is not None:
        encoder.patch_embed.proj.bias.zero_()
    encoder.cls_token.normal_(std=1e-6)


@torch.no_grad()
def mae_encoder(encoder: VisionTransformer) -> None:
    """MAE's encoder: columns-first sin-cos positions, Xavier with qkv as one map, class token ~ N(0, 0.02^2)."""
    freeze_sincos_positions(encoder, "mae", rows_first=False)
    xavier_weights(encoder, split_qkv=False)
    encoder.cls_token.normal_(std=0.02)


@torch.no_grad()
def dino_encoder(encoder: VisionTransformer) -> None:
    """DINO's and SiT's ViT: timm's initialisation with the class token ~ N(0, 0.02^2), truncated at +-2."""
    trunc_normal_(encoder.cls_token, std=0.02)


def simmim_trunc_normal(tensor: torch.Tensor, std: float = 0.02) -> None:
    """SimMIM's ``_trunc_normal_``: N(0, std^2) truncated at +-1 std (``a=-std, b=std``)."""
    trunc_normal_(tensor, std=std, a=-std, b=std)


@torch.no_grad()
def simmim_encoder(encoder: nn.Module) -> None:
    """SimMIM's ViT initialisation on timm's Beit (:data:`SIMMIM_VIT`): every Linear and the
    patch projection :func:`simmim_trunc_normal`, bias 0, the class token likewise, then the
    attention and MLP output maps of block l divided by sqrt(2 l) (``fix_init_weight``)."""
    for module in encoder.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            simmim_trunc_normal(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    simmim_trunc_normal(encoder.cls_token)
    encoder.fix_init_weight()

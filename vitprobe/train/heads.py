"""Heads that sit on top of the encoder during pre-training (never saved with the encoder).

* :class:`DINOHead` -- MLP -> bottleneck -> L2 norm -> weight-normalised prototypes.
* :func:`bn_mlp` -- MoCo v3 projector / predictor (Linear-BN-ReLU stacks).
* :class:`MAEDecoder` -- transformer decoder with mask tokens and fixed 2-D sin-cos positions.
* :class:`PixelDecoder` -- per-patch linear maps (1x1 convolutions) + pixel shuffle back to the image.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import trunc_normal_
from timm.models.vision_transformer import Block
from torch import Tensor


def init_trunc_normal(m: nn.Module) -> None:
    """A Linear's weight ~ N(0, 0.02^2) truncated at +-2 (DINO's and SiT's heads), bias 0."""
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def init_xavier(m: nn.Module) -> None:
    """A Linear's weight ~ U(-a, a), a = sqrt(6 / (fan_in + fan_out)) (Xavier uniform), bias 0."""
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


class PrototypeLinear(nn.Module):
    """Weight-normalised linear map without bias: y = (g / ||v_k||) v_k . x for every prototype k.

    With ``learn_scale=False`` (DINO's ``norm_last_layer``) g is fixed to 1 and not multiplied
    in (K x D fewer products each way on DINO's 65536 x 256 prototypes).
    """

    def __init__(self, in_dim: int, num_prototypes: int, learn_scale: bool = False):
        super().__init__()
        self.learn_scale = learn_scale
        self.weight_v = nn.Parameter(torch.empty(num_prototypes, in_dim))
        trunc_normal_(self.weight_v, std=0.02)
        self.weight_g = nn.Parameter(torch.ones(num_prototypes, 1), requires_grad=learn_scale)

    def forward(self, x: Tensor) -> Tensor:
        weight = F.normalize(self.weight_v, dim=1)
        return F.linear(x, self.weight_g * weight if self.learn_scale else weight)


class DINOHead(nn.Module):
    """x -> MLP (``layers`` linears, hidden width, GELU) -> bottleneck -> L2 norm -> K prototypes."""

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int = 2048, bottleneck_dim: int = 256,
                 layers: int = 3, norm_last_layer: bool = True):
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (layers - 1) + [bottleneck_dim]
        mods: list[nn.Module] = []
        for i in range(layers):
            mods.append(nn.Linear(dims[i], dims[i + 1]))
            if i < layers - 1:
                mods.append(nn.GELU())
        self.mlp = nn.Sequential(*mods)
        self.mlp.apply(init_trunc_normal)
        self.last_layer = PrototypeLinear(bottleneck_dim, out_dim, learn_scale=not norm_last_layer)

    def forward(self, x: Tensor) -> Tensor:
        return self.last_layer(F.normalize(self.mlp(x), dim=-1))


def bn_mlp(layers: int, in_dim: int, hidden_dim: int, out_dim: int,
           activations: tuple[type[nn.Module], ...] = (nn.ReLU,)) -> nn.Sequential:
    """MoCo v3 ViT MLP: (Linear no bias, BN, act_i) x (layers - 1), Linear, affine-free BN;
    act_i = ``activations[min(i, len - 1)]`` (ReLU throughout by default). MoCo_ViT ends
    both its projector and its predictor with the BN (only its ResNet predictor drops it)."""
    mods: list[nn.Module] = []
    for i in range(layers):
        d_in = in_dim if i == 0 else hidden_dim
        d_out = out_dim if i == layers - 1 else hidden_dim
        mods.append(nn.Linear(d_in, d_out, bias=False))
        if i < layers - 1:
            mods += [nn.BatchNorm1d(d_out), activations[min(i, len(activations) - 1)]()]
        else:
            mods.append(nn.BatchNorm1d(d_out, affine=False))
    return nn.Sequential(*mods)


def sincos_pos_embed_2d(dim: int, grid: tuple[int, int], rows_first: bool = False) -> Tensor:
    """Fixed 2-D sin-cos positions (h * w, dim) in raster order: half the channels encode the
    column, half the row (MAE's layout; ``rows_first``: the row's half first, MoCo v3's layout).

    For one axis with coordinate t and d = dim / 2 channels: [sin(t w_i), cos(t w_i)] with
    w_i = 10000^(-i / (d / 2)), i = 0 .. d/2 - 1.
    """
    if dim % 4:
        raise ValueError(f"sin-cos position embedding needs a width divisible by 4, got {dim}")
    h, w = grid
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim // 4))
    rows, cols = torch.meshgrid(torch.arange(h, dtype=torch.float64),
                                torch.arange(w, dtype=torch.float64), indexing="ij")

    def axis(t: Tensor) -> Tensor:
        angles = t.reshape(-1, 1) * omega
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    halves = [axis(rows), axis(cols)] if rows_first else [axis(cols), axis(rows)]
    return torch.cat(halves, dim=1).float()


class MAEDecoder(nn.Module):
    """MAE decoder: embed visible tokens, fill mask tokens, add fixed positions, blocks, predict pixels.

    Input: encoder tokens (B, P + n_visible, C) and ``restore`` (B, N) indices that put the
    concatenation [visible, masked] back into raster order. Output: (B, N, p * p * 3).
    """

    def __init__(self, embed_dim: int, grid: tuple[int, int], patch_size: int, num_prefix: int,
                 dim: int = 512, depth: int = 8, num_heads: int = 16, mlp_ratio: float = 4.0):
        super().__init__()
        self.num_prefix = num_prefix
        self.embed = nn.Linear(embed_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        pos = torch.cat([torch.zeros(num_prefix, dim), sincos_pos_embed_2d(dim, grid)])
        self.register_buffer("pos_embed", pos.unsqueeze(0), persistent=False)
        self.blocks = nn.Sequential(*[Block(dim, num_heads, mlp_ratio, qkv_bias=True) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.pred = nn.Linear(dim, patch_size * patch_size * 3)
        self.apply(init_xavier)  # MAE's initialize_weights: Xavier for every Linear
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(self, tokens: Tensor, restore: Tensor) -> Tensor:
        x = self.embed(tokens)
        prefix, visible = x[:, :self.num_prefix], x[:, self.num_prefix:]
        n_masked = restore.shape[1] - visible.shape[1]
        patches = torch.cat([visible, self.mask_token.expand(x.shape[0], n_masked, -1)], dim=1)
        patches = torch.gather(patches, 1, restore.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        x = torch.cat([prefix, patches], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.pred(x[:, self.num_prefix:])


def tokens_to_map(tokens: Tensor, grid: tuple[int, int]) -> Tensor:
    """Patch tokens (B, h w, C) -> feature map (B, C, h, w)."""
    return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], *grid)


class PixelDecoder(nn.Module):
    """Patch tokens (B, h w, C) -> image (B, 3, h p, w p): a per-token linear map to 3 p^2
    values, then pixel shuffle.

    ``hidden_dim = 0`` is SimMIM's single 1x1 convolution; otherwise ``hidden_layers`` times
    (linear to ``hidden_dim``, GELU), then the linear map to pixels (SiT's RECHead: three
    Linear-GELU of the width, then a p x p stride-p transposed convolution, the same map). A
    1x1 convolution over the token map is this per-token linear map (same initialisation);
    applied to the tokens directly, it needs no transposes.
    """

    def __init__(self, embed_dim: int, patch_size: int, hidden_dim: int = 0, hidden_layers: int = 1):
        super().__init__()
        out = 3 * patch_size * patch_size
        layers: list[nn.Module] = []
        width = embed_dim
        for _ in range(hidden_layers if hidden_dim else 0):
            layers += [nn.Linear(width, hidden_dim), nn.GELU()]
            width = hidden_dim
        self.proj = nn.Sequential(*layers, nn.Linear(width, out))
        self.shuffle = nn.PixelShuffle(patch_size)

    def forward(self, tokens: Tensor, grid: tuple[int, int]) -> Tensor:
        return self.shuffle(tokens_to_map(self.proj(tokens), grid))

"""Token plumbing through a timm VisionTransformer, for inputs of any size and partial token sets.

The encoder's own pieces are used in timm's order: patch_embed (conv + norm), position
embedding (resampled bicubically when the patch grid differs from the trained one), prefix
tokens, pos_drop, norm_pre, blocks, norm. When only the class token is needed
(:func:`cls_features`), the last block computes the class token's output alone.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import Attention, DropPath, resample_abs_pos_embed
from timm.models.beit import Beit
from timm.models.vision_transformer import Block, VisionTransformer
from torch import Tensor

from vitprobe.errors import ConfigError


def check_encoder(encoder: nn.Module, objective: str, beit: bool = False) -> None:
    """Objectives train timm VisionTransformers with a class token and absolute positions;
    with ``beit``, timm's Beit (SimMIM's reference ViT)."""
    if beit:
        if not isinstance(encoder, Beit):
            raise ConfigError(f"objective {objective!r} with encoder_init 'reference' trains SimMIM's ViT, a timm Beit "
                              "(family 'beit'); build the encoder so, or --set encoder_init=timm")
        return
    if not isinstance(encoder, VisionTransformer) or encoder.cls_token is None or encoder.pos_embed is None:
        raise ConfigError(f"objective {objective!r} trains a timm VisionTransformer with a class token "
                          f"and absolute position embedding; build the encoder with family 'vit'")


def set_drop_path(encoder: VisionTransformer, rate: float) -> None:
    """Stochastic depth on the residual branches of every block: block i of L drops each
    sample's branch with probability ``rate * i / (L - 1)`` (the linear rule of DINO, SiT and
    SimMIM: 0 at the first block, ``rate`` at the last); 0 makes every branch an identity."""
    if not 0.0 <= rate < 1.0:
        raise ConfigError(f"drop_path must be in [0, 1), got {rate}")
    depth = len(encoder.blocks)
    for block, r in zip(encoder.blocks, torch.linspace(0.0, rate, depth).tolist(), strict=True):
        block.drop_path1 = DropPath(r) if r > 0 else nn.Identity()
        block.drop_path2 = DropPath(r) if r > 0 else nn.Identity()


def embed_patches(encoder: VisionTransformer, images: Tensor) -> tuple[Tensor, tuple[int, int]]:
    """Patch embeddings (B, h * w, C) without positions, and the grid (h, w)."""
    x = encoder.patch_embed.proj(images)
    grid = (x.shape[-2], x.shape[-1])
    return encoder.patch_embed.norm(x.flatten(2).transpose(1, 2)), grid


def pos_split(encoder: VisionTransformer) -> int:
    """How many leading entries of pos_embed belong to prefix tokens."""
    return 0 if encoder.no_embed_class else encoder.num_prefix_tokens


def patch_positions(encoder: VisionTransformer, grid: tuple[int, int]) -> Tensor:
    """Position embedding (1, h * w, C) of the patch tokens, resampled to ``grid`` if needed."""
    pos = encoder.pos_embed[:, pos_split(encoder):]
    return resample_abs_pos_embed(pos, new_size=list(grid), old_size=list(encoder.patch_embed.grid_size),
                                  num_prefix_tokens=0)


def prefix_tokens(encoder: VisionTransformer, batch: int) -> Tensor:
    """Class (and register) tokens with their positions, (B, P, C)."""
    parts = [encoder.cls_token]
    if encoder.reg_token is not None:
        parts.append(encoder.reg_token)
    prefix = torch.cat(parts, dim=1)
    split = pos_split(encoder)
    if split:
        prefix = prefix + encoder.pos_embed[:, :split]
    return prefix.expand(batch, -1, -1)


def run_blocks(encoder: VisionTransformer, tokens: Tensor) -> Tensor:
    """pos_drop, norm_pre, every block, final norm."""
    x = encoder.norm_pre(encoder.pos_drop(tokens))
    return encoder.norm(encoder.blocks(x))


def input_tokens(encoder: VisionTransformer, images: Tensor) -> Tensor:
    """Prefix and patch tokens with their positions (B, P + h * w, C), before the blocks."""
    x, grid = embed_patches(encoder, images)
    x = x + patch_positions(encoder, grid)
    return torch.cat([prefix_tokens(encoder, x.shape[0]), x], dim=1)


def encode_patch_tokens(encoder: VisionTransformer | Beit, tokens: Tensor, grid: tuple[int, int]) -> Tensor:
    """Every output token (B, 1 + h * w, C) from patch embeddings (B, h * w, C) without
    positions: a ViT adds its absolute positions and prefix tokens and runs :func:`run_blocks`;
    timm's Beit prepends its class token, adds its absolute embedding if it has one, and gives
    every block its shared relative position bias if it has one, as its forward does."""
    if not isinstance(encoder, Beit):
        x = tokens + patch_positions(encoder, grid)
        return run_blocks(encoder, torch.cat([prefix_tokens(encoder, x.shape[0]), x], dim=1))
    x = torch.cat([encoder.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
    if encoder.pos_embed is not None:
        x = x + encoder.pos_embed
    x = encoder.pos_drop(x)
    bias = encoder.rel_pos_bias() if encoder.rel_pos_bias is not None else None
    for block in encoder.blocks:
        x = block(x, shared_rel_pos_bias=bias)
    return encoder.norm(x)


def encode(encoder: VisionTransformer, images: Tensor) -> Tensor:
    """All output tokens (B, P + h * w, C) for images of any patch-multiple size."""
    return run_blocks(encoder, input_tokens(encoder, images))


def class_token_block(block: nn.Module, x: Tensor) -> Tensor:
    """``block(x)[:, :1]``, computing the class token alone: its query attends to the keys
    and values of every token, and the MLP runs on that one token. Stochastic depth draws the
    same per-sample masks as the full block. Blocks other than timm's plain ``Block`` with
    ``Attention`` run in full."""
    attn = block.attn
    if type(block) is not Block or type(attn) is not Attention or attn.gate is not None:
        return block(x)[:, :1]
    y = block.norm1(x)
    b, n, _ = y.shape
    heads, dim, width = attn.num_heads, attn.head_dim, attn.attn_dim
    weight, bias = attn.qkv.weight, attn.qkv.bias
    q = F.linear(y[:, :1], weight[:width], None if bias is None else bias[:width])
    kv = F.linear(y, weight[width:], None if bias is None else bias[width:])
    q = attn.q_norm(q.view(b, 1, heads, dim).transpose(1, 2))
    k, v = kv.view(b, n, 2, heads, dim).permute(2, 0, 3, 1, 4).unbind(0)
    out = F.scaled_dot_product_attention(q, attn.k_norm(k), v,
                                         dropout_p=attn.attn_drop.p if attn.training else 0.0)
    out = attn.proj_drop(attn.proj(attn.norm(out.transpose(1, 2).reshape(b, 1, width))))
    cls = x[:, :1] + block.drop_path1(block.ls1(out))
    return cls + block.drop_path2(block.ls2(block.mlp(block.norm2(cls))))


def cls_features(encoder: VisionTransformer, images: Tensor) -> Tensor:
    """The normed class token (B, C) = ``encode(encoder, images)[:, 0]``, without the other
    tokens' outputs of the last block (its MLP and attention queries for h * w tokens)."""
    x = encoder.norm_pre(encoder.pos_drop(input_tokens(encoder, images)))
    *body, last = encoder.blocks
    for block in body:
        x = block(x)
    return encoder.norm(class_token_block(last, x))[:, 0]

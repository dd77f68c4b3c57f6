"""The architecture of a ViT encoder as plain data, and the timm model it builds."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import torch.nn as nn

from vitprobe.errors import ConfigError


@dataclass(frozen=True)
class ArchSpec:
    """Everything needed to build a timm ViT/BEiT encoder; round-trips through JSON.

    ``num_prefix_tokens`` is derived: 1 (class token) + ``reg_tokens``.
    """

    family: Literal["vit", "beit"] = "vit"
    patch_size: int = 16
    embed_dim: int = 384
    depth: int = 12
    num_heads: int = 6
    img_size: int = 224
    reg_tokens: int = 0
    qkv_bias: bool = True
    mlp_ratio: float = 4.0
    layer_scale: float | None = None
    rel_pos_bias: Literal["none", "shared", "per_block"] = "none"
    abs_pos_emb: bool = True
    global_pool: str = "token"
    fc_norm: bool = False
    num_classes: int = 0

    @property
    def num_prefix_tokens(self) -> int:
        """Class token plus register tokens."""
        return 1 + self.reg_tokens

    @property
    def grid(self) -> tuple[int, int]:
        """Patch grid (h, w) at ``img_size``."""
        side = self.img_size // self.patch_size
        return side, side

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the fields."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ArchSpec":
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown architecture fields: {sorted(unknown)}")
        return cls(**d)

    def replace(self, **changes: Any) -> "ArchSpec":
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def describe(self) -> str:
        """Short human name, e.g. ``vit p16 d384 L12 H6 @224``."""
        return (f"{self.family} p{self.patch_size} d{self.embed_dim} L{self.depth} "
                f"H{self.num_heads} @{self.img_size}")


def build_model(spec: ArchSpec) -> nn.Module:
    """Build the randomly initialised timm encoder that ``spec`` describes, in eval mode."""
    if spec.family == "vit":
        from timm.models.vision_transformer import VisionTransformer

        model = VisionTransformer(
            img_size=spec.img_size, patch_size=spec.patch_size, embed_dim=spec.embed_dim,
            depth=spec.depth, num_heads=spec.num_heads, mlp_ratio=spec.mlp_ratio,
            qkv_bias=spec.qkv_bias, init_values=spec.layer_scale, reg_tokens=spec.reg_tokens,
            global_pool=spec.global_pool, fc_norm=spec.fc_norm, num_classes=spec.num_classes,
        )
    elif spec.family == "beit":
        from timm.models.beit import Beit

        if spec.reg_tokens:
            raise ValueError("BEiT encoders have no register tokens")
        model = Beit(
            img_size=spec.img_size, patch_size=spec.patch_size, embed_dim=spec.embed_dim,
            depth=spec.depth, num_heads=spec.num_heads, mlp_ratio=spec.mlp_ratio,
            qkv_bias=spec.qkv_bias, init_values=spec.layer_scale,
            use_abs_pos_emb=spec.abs_pos_emb,
            use_rel_pos_bias=spec.rel_pos_bias == "per_block",
            use_shared_rel_pos_bias=spec.rel_pos_bias == "shared",
            global_pool=spec.global_pool, num_classes=spec.num_classes,
        )
    else:
        raise ValueError(f"unknown architecture family {spec.family!r}")
    return model.eval()


def arch_from_timm(name: str) -> ArchSpec:
    """The ArchSpec of timm's ``name`` (a plain VisionTransformer that build_model rebuilds
    with identical parameter names and shapes); for ``train --arch`` and ``load_model(arch=)``."""
    import timm
    from timm.layers import LayerScale
    from timm.models.vision_transformer import VisionTransformer

    try:
        model = timm.create_model(name, pretrained=False, num_classes=0)
    except RuntimeError:
        raise ConfigError(f"architecture {name!r} is not a timm model; see timm.list_models('vit_*')") from None
    if type(model) is not VisionTransformer:
        raise ConfigError(f"architecture {name!r} is a {type(model).__name__}, not a timm "
                          "VisionTransformer; pick a vit_* model")
    block = model.blocks[0]
    spec = ArchSpec(
        family="vit", patch_size=model.patch_embed.patch_size[0], embed_dim=model.embed_dim,
        depth=len(model.blocks), num_heads=block.attn.num_heads,
        img_size=model.patch_embed.img_size[0], reg_tokens=model.num_reg_tokens,
        qkv_bias=block.attn.qkv.bias is not None,
        mlp_ratio=block.mlp.fc1.out_features / model.embed_dim,
        layer_scale=float(block.ls1.gamma.detach().flatten()[0]) if isinstance(block.ls1, LayerScale) else None,
        global_pool=model.global_pool, fc_norm=not isinstance(model.fc_norm, nn.Identity))
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in build_model(spec).state_dict().items()}
    if want != got:
        def first(keys: list[str], shapes: dict[str, tuple[int, ...]]) -> str:
            named = [f"{k} {shapes[k]}" if k in want and k in got else k for k in keys[:3]]
            return ", ".join(named) + (" ..." if len(keys) > 3 else "") or "nothing else"

        timm_only = sorted(k for k in want if got.get(k) != want[k])
        builder_only = sorted(k for k in got if want.get(k) != got[k])
        why = ("its position embedding leaves out the class and register tokens (no_embed_class)"
               if model.no_embed_class else "e.g. no class token, or a pre-norm")
        raise ConfigError(f"architecture {name!r} is not what vitprobe's ViT builder makes (timm's model has "
                          f"{first(timm_only, want)}; the builder's has {first(builder_only, got)}: {why}); use a "
                          "plain vit_* model, e.g. vit_small_patch16_224")
    return spec

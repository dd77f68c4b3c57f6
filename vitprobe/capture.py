"""The hook engine: one forward pass hands out the sites that analyzers asked for.

Sites (numbered as in the papers, blocks 1..L):

- ``Site("attn", l)``   post-softmax attention probabilities of block l, (B, H, N, N).
- ``Site("tokens", l)`` residual stream after block l, (B, N, C); ``tokens 0`` is the input of
  block 1 (patch embedding + absolute position embedding; a BEiT-layout model without one, as
  SimMIM's, has only the patch embedding there: its positions enter each block's attention as
  a relative bias; ``ModelInfo.absolute_positions`` says which, and the analyses that read
  layer 0 name it in their protocol). The final norm is not applied.

Attention: timm's attention modules use fused scaled-dot-product attention, which never
materialises the probabilities. Inside :func:`capture`, ``fused_attn`` is switched off on the
blocks whose attention was asked for (and only those), the probabilities are read where timm's
own eager path computes them (the input of ``attn_drop``, an identity in eval mode), and the
previous setting is restored on exit. The forward pass stops right after the deepest block any
site needs, so later blocks are never computed.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from typing import Iterable, Iterator, NamedTuple

import torch
import torch.nn as nn

from vitprobe.data.base import IMAGENET_MEAN, IMAGENET_STD
from vitprobe.errors import CaptureError, ConfigError
from vitprobe.heap import retain_freed_memory

# The first layer of each kind of site: attention maps of blocks 1..L; tokens at depth 0
# (the embedding) .. L.
FIRST_LAYER = {"attn": 1, "tokens": 0}


class Site(NamedTuple):
    """A named place in the forward pass: ``kind`` "attn" (``layer`` 1..L, the block's attention
    probabilities) or "tokens" (``layer`` 0..L: the embedding, then each block's output)."""

    kind: str
    layer: int

    def __str__(self) -> str:
        return f"{self.kind}.{self.layer}"


@dataclass(frozen=True)
class ModelInfo:
    """What analyzers need to know about the encoder they observe."""

    depth: int
    num_heads: int
    num_prefix_tokens: int
    patch_size: int
    grid: tuple[int, int]
    embed_dim: int
    img_size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    final_norm: nn.Module | None = None
    final_norm_after_pooling: bool = False  # timm's ``fc_norm``: applied to the pooled vector
    class_token: bool = True  # token 0 is a class token (else the prefix holds registers only)
    absolute_positions: bool = True  # tokens 0 hold an absolute position embedding (not BEiT's without)

    @property
    def input_size(self) -> tuple[int, int]:
        """(H, W) in pixels of the images the model reads at this grid: grid x patch size."""
        return self.grid[0] * self.patch_size, self.grid[1] * self.patch_size

    @property
    def num_tokens(self) -> int:
        """N = prefix tokens + h * w patch tokens."""
        return self.num_prefix_tokens + self.grid[0] * self.grid[1]

    @property
    def registers_note(self) -> str:
        """`` (its K prefix tokens are registers)`` where there is no class token but a prefix,
        for messages that refuse to read token 0 as a class token; else empty."""
        if self.class_token or not self.num_prefix_tokens:
            return ""
        return f" (its {self.num_prefix_tokens} prefix tokens are registers)"


def _blocks(model: nn.Module) -> nn.ModuleList:
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, (nn.ModuleList, nn.Sequential)) or len(blocks) == 0:
        raise CaptureError(
            f"{type(model).__name__} has no transformer `blocks`; vitprobe observes timm "
            "VisionTransformer, DeiT and Beit models (load one with vitprobe.load_model)")
    return blocks


def model_info(model: nn.Module) -> ModelInfo:
    """Read depth, heads, prefix tokens (and whether the first is a class token), patch grid,
    width and normalisation off a timm ViT.

    The final norm is ``norm`` (on every token, before pooling) or, where that is an identity,
    ``fc_norm`` (on the pooled vector, as timm's head applies it).
    """
    blocks = _blocks(model)
    patch_embed = model.patch_embed
    cfg = getattr(model, "pretrained_cfg", None) or {}
    norms = [getattr(model, name, None) for name in ("norm", "fc_norm")]
    norm, fc_norm = [n if isinstance(n, nn.Module) and not isinstance(n, nn.Identity) else None
                     for n in norms]
    return ModelInfo(
        depth=len(blocks),
        num_heads=int(blocks[0].attn.num_heads),
        num_prefix_tokens=int(getattr(model, "num_prefix_tokens", 1)),
        patch_size=int(patch_embed.patch_size[0]),
        grid=tuple(int(g) for g in patch_embed.grid_size),
        embed_dim=int(getattr(model, "embed_dim", getattr(model, "num_features", 0))),
        img_size=int(patch_embed.img_size[0]),
        mean=tuple(cfg.get("mean", IMAGENET_MEAN)),
        std=tuple(cfg.get("std", IMAGENET_STD)),
        final_norm=norm or fc_norm,
        final_norm_after_pooling=norm is None and fc_norm is not None,
        class_token=bool(getattr(model, "has_class_token", getattr(model, "cls_token", None) is not None)),
        absolute_positions=getattr(model, "pos_embed", None) is not None,
    )


def at_image_size(info: ModelInfo, model: nn.Module, height: int, width: int, where: str) -> ModelInfo:
    """``info`` for images of ``height`` x ``width`` px. A timm model built with
    ``dynamic_img_size=True`` runs at any multiple of its patch size p (timm resamples its
    position table each forward): its grid becomes (height / p, width / p). Any other model
    keeps its own size."""
    if not getattr(model, "dynamic_img_size", False) or (height, width) == info.input_size:
        return info
    p = info.patch_size
    if height % p or width % p:
        raise ConfigError(f"{where}: images are {height}x{width} px, not a multiple of the model's "
                          f"patch size {p}; resize or crop them to a multiple of {p} px")
    return replace(info, grid=(height // p, width // p), img_size=height)


class _StopForward(Exception):
    """Raised by the last needed hook, inside :meth:`Capture.run` only, so that deeper blocks
    are not computed."""


def _is_pair(value: object) -> bool:
    """A ``(kind, layer)`` pair: a str and an int."""
    return (isinstance(value, (tuple, list)) and len(value) == 2 and isinstance(value[0], str)
            and isinstance(value[1], int))


def _as_site(site: object) -> Site:
    """A Site from a Site, a ``(kind, layer)`` pair or its printed form ``"kind.layer"``."""
    if isinstance(site, str) and site.count(".") == 1 and site.split(".")[1].isdigit():
        kind, layer = site.split(".")
        return Site(kind, int(layer))
    if _is_pair(site):
        return Site(site[0], site[1])  # type: ignore[index]
    raise CaptureError(f"{site!r} is not a site; give Site('attn', 3), ('attn', 3) or 'attn.3' "
                       "(kinds 'attn' and 'tokens', blocks numbered from 1)")


class Captured(dict):
    """What :meth:`Capture.run` returns: tensors by Site, also indexed as the sites may be given,
    ``("attn", 3)`` (equal to the Site) or ``"attn.3"``."""

    def __missing__(self, key: object) -> torch.Tensor:
        site = _as_site(key) if isinstance(key, str) else None
        if site is not None and site in self:
            return self[site]
        raise KeyError(f"{key!r} was not captured; the capture holds {', '.join(str(s) for s in sorted(self))}")


def _is_one_site(sites: object) -> bool:
    """A single site given alone (not in a list): a Site, ``"attn.3"`` or ``("attn", 3)``."""
    return isinstance(sites, (Site, str)) or (isinstance(sites, tuple) and _is_pair(sites))


def _check_sites(sites: object, depth: int) -> frozenset[Site]:
    checked = set()
    for site in [sites] if _is_one_site(sites) else sites:  # type: ignore[union-attr]
        site = _as_site(site)
        if site.kind not in FIRST_LAYER:
            raise CaptureError(f"unknown site kind {site.kind!r}; use 'attn' or 'tokens'")
        lowest = FIRST_LAYER[site.kind]
        if not lowest <= site.layer <= depth:
            raise CaptureError(
                f"site {site} is outside this model: {site.kind} layers run {lowest}..{depth}")
        checked.add(site)
    return frozenset(checked)


class Capture:
    """Hooks installed on a model; :meth:`run` does one forward pass and returns the sites."""

    def __init__(self, model: nn.Module, sites: Site | str | Iterable[Site | str | tuple[str, int]]) -> None:
        self.model = model
        self.blocks = _blocks(model)
        self.sites = _check_sites(sites, len(self.blocks))
        self._store: dict[Site, torch.Tensor] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._fused: list[tuple[nn.Module, bool]] = []
        # The hooks act only inside run(): the model called directly (or by another capture's
        # run) while they are installed computes its usual output and keeps nothing.
        self._running = False
        # 0 means "stop before block 1"; otherwise the deepest block whose output/attention is needed.
        self.last_block = max((s.layer for s in self.sites), default=0)

    # -- installing and removing ---------------------------------------------------------
    def install(self) -> None:
        """Register the hooks and switch fused attention off where attention is needed."""
        try:
            for site in sorted(self.sites):
                if site.kind == "attn":
                    self._hook_attention(site)
                elif site.layer == 0:
                    self._handles.append(
                        self.blocks[0].register_forward_pre_hook(self._keep_input(site)))
                else:
                    self._handles.append(
                        self.blocks[site.layer - 1].register_forward_hook(self._keep_output(site)))
            if self.sites:
                self._install_stop()
        except BaseException:
            self.remove()
            raise

    def remove(self) -> None:
        """Remove every hook and restore the attention modules; safe to call twice."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        for attn, fused in self._fused:
            attn.fused_attn = fused
        self._fused.clear()
        self._store = {}

    def _hook_attention(self, site: Site) -> None:
        attn = self.blocks[site.layer - 1].attn
        if not (hasattr(attn, "fused_attn") and isinstance(getattr(attn, "attn_drop", None), nn.Module)):
            raise CaptureError(
                f"block {site.layer} uses {type(attn).__name__}, whose attention probabilities "
                "vitprobe cannot read; supported: timm Attention (ViT, DeiT) and Beit attention")
        self._fused.append((attn, bool(attn.fused_attn)))
        attn.fused_attn = False

        self._handles.append(attn.attn_drop.register_forward_pre_hook(self._keep_input(site)))

    def _keep_input(self, site: Site):
        def keep(_module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            if self._running:
                self._store[site] = inputs[0].detach().float()
        return keep

    def _keep_output(self, site: Site):
        def keep(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
            if self._running:
                self._store[site] = output.detach().float()
        return keep

    def _install_stop(self) -> None:
        def stop(*_args) -> None:
            if self._running:
                raise _StopForward

        if self.last_block == 0:
            # Registered after the tokens-0 pre-hook, so it runs after it.
            self._handles.append(self.blocks[0].register_forward_pre_hook(stop))
        else:
            self._handles.append(self.blocks[self.last_block - 1].register_forward_hook(stop))

    # -- running ---------------------------------------------------------------------------
    def run(self, images: torch.Tensor) -> Captured:
        """One forward pass over ``images`` (B, 3, H, W) of the model's dtype; returns every
        requested site (nothing is kept), by Site or as given (``"attn.3"``)."""
        if not self._handles and self.sites:
            raise CaptureError("the capture's hooks are not installed: call run inside `with capture(model, "
                               "sites) as cap:` (a capture is done when its block ends), or cap.install() first")
        _check_images(images, self.model)
        embed = self.model.patch_embed
        size = tuple(int(v) for v in getattr(embed, "img_size", ()) or ())
        if getattr(embed, "strict_img_size", False) and size and tuple(images.shape[-2:]) != size:
            raise CaptureError(f"images are {images.shape[-2]}x{images.shape[-1]} px but the model "
                               f"takes {size[0]}x{size[1]}; resize them (or load the model with img_size)")
        self._store, self._running = {}, True
        try:
            self.model.forward_features(images)
        except _StopForward:
            pass
        finally:
            self._running = False
        found, self._store = self._store, {}
        missing = self.sites - found.keys()
        if missing:
            names = ", ".join(str(s) for s in sorted(missing))
            raise CaptureError(
                f"capture sites did not fire: {names}; the model's forward does not pass "
                "through its timm blocks/attention as expected")
        return Captured(found)


def _check_images(images: object, model: nn.Module) -> None:
    """CaptureError naming the fix unless ``images`` is a (B, 3, H, W) tensor of the model's dtype."""
    if not isinstance(images, torch.Tensor):
        raise CaptureError(f"images must be a torch.Tensor (B, 3, H, W), got {type(images).__name__}")
    shape = list(images.shape)
    if images.dim() == 3 and shape[0] == 3:
        raise CaptureError(f"images have shape {shape}: one image without a batch dimension; use images.unsqueeze(0)")
    if images.dim() == 4 and shape[1] != 3 and shape[-1] == 3:
        raise CaptureError(f"images have shape {shape}, channels last; use images.permute(0, 3, 1, 2)")
    if images.dim() != 4 or shape[1] != 3:
        raise CaptureError(f"images have shape {shape}; give a batch of RGB images (B, 3, H, W)")
    weight = next(model.parameters(), None)
    if weight is not None and images.dtype != weight.dtype:
        raise CaptureError(f"images are {images.dtype} and the model's weights {weight.dtype}; "
                           f"convert them: images.to({weight.dtype})")


@contextlib.contextmanager
def capture(model: nn.Module, sites: Site | str | Iterable[Site | str | tuple[str, int]]) -> Iterator[Capture]:
    """Install hooks for ``sites`` (one or several, each a Site, ``("attn", 3)`` or ``"attn.3"``)
    on ``model``; always removed on exit, even on error. From the first capture on, memory
    that the process frees is kept for reuse (:func:`vitprobe.heap.retain_freed_memory`).

    >>> with capture(model, [Site("attn", 12), Site("tokens", 0)]) as cap:
    ...     out = cap.run(images)   # {Site("attn", 12): (B,H,N,N), Site("tokens", 0): (B,N,C)}
    """
    cap = Capture(model, sites)
    retain_freed_memory()
    cap.install()
    try:
        yield cap
    finally:
        cap.remove()


def attention_sites(depth: int) -> list[Site]:
    """``attn 1..L``."""
    return [Site("attn", layer) for layer in range(FIRST_LAYER["attn"], depth + 1)]


def token_sites(depth: int) -> list[Site]:
    """``tokens 0..L``."""
    return [Site("tokens", layer) for layer in range(FIRST_LAYER["tokens"], depth + 1)]

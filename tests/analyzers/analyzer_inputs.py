"""Synthetic model description and batches for the analyzer tests (no model is run)."""

from __future__ import annotations

import warnings

import torch

from vitprobe.analyzers import get_analyzer
from vitprobe.capture import ModelInfo, Site
from vitprobe.errors import VitprobeWarning

DEPTH, HEADS, PREFIX, PATCH, GRID, WIDTH, IMG = 2, 3, 1, 4, (4, 4), 8, 16


def make_info() -> ModelInfo:
    torch.manual_seed(123)
    norm = torch.nn.LayerNorm(WIDTH)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.normal_()
    return ModelInfo(depth=DEPTH, num_heads=HEADS, num_prefix_tokens=PREFIX, patch_size=PATCH,
                     grid=GRID, embed_dim=WIDTH, img_size=IMG, final_norm=norm)


def make_batch(indices: list[int], seed: int) -> dict:
    """A batch as the runner hands it: data items collated plus every site of the model."""
    gen = torch.Generator().manual_seed(seed)
    b = len(indices)
    n = PREFIX + GRID[0] * GRID[1]
    index = torch.tensor(indices)
    cls = index % 3
    mask = torch.zeros(b, IMG, IMG, dtype=torch.uint8)
    for i in range(b):
        r, c = torch.randint(0, IMG - 6, (2,), generator=gen).tolist()
        mask[i, r:r + 6, c:c + 6] = 1
        if i % 2:
            mask[i, :3, :5] = 2
        mask[i, -2:, :] = 255
    if b > 1:
        mask[-1] = 0  # an image without objects
    sites = {}
    for layer in range(1, DEPTH + 1):
        logits = torch.randn(b, HEADS, n, n, generator=gen) * 2
        sites[Site("attn", layer)] = logits.softmax(-1)
    for layer in range(DEPTH + 1):
        tokens = torch.randn(b, n, WIDTH, generator=gen)
        tokens[:, :, 0] += 3.0 * cls[:, None].float() * (layer + 1)  # a class signal for probes
        sites[Site("tokens", layer)] = tokens
    return {"image": torch.randn(b, 3, IMG, IMG, generator=gen), "index": index,
            "labels": {"cls": cls, "half": (index < 12).long()}, "mask": mask, "sites": sites}


def concat_batches(batches: list[dict]) -> dict:
    out = {key: torch.cat([b[key] for b in batches]) for key in ("image", "index", "mask")}
    out["labels"] = {k: torch.cat([b["labels"][k] for b in batches]) for k in batches[0]["labels"]}
    out["sites"] = {s: torch.cat([b["sites"][s] for b in batches]) for s in batches[0]["sites"]}
    return out


def compute_warned(name: str, info: ModelInfo, batch: dict, **params) -> tuple:
    """Analysis ``name`` bound to ``info`` and fed ``batch``: its Result and the vitprobe
    warnings its compute() gave."""
    analyzer = get_analyzer(name, **params).bind(info, {})
    analyzer.update(batch)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = analyzer.compute()
    return result, [str(w.message) for w in caught if issubclass(w.category, VitprobeWarning)]

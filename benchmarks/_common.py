"""Shared pieces of the benchmarks: models, synthetic batches, the analysed pass, timing.

Every benchmark prints ratios measured within ONE run (the numerator and the denominator
interleaved on the same machine, same threads, same images), never absolute timings alone.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from typing import Any, Callable, Iterable, Mapping, Sequence

import timm
import torch
import torch.nn as nn

from vitprobe.analyzers import get_analyzer, list_analyzers
from vitprobe.capture import capture, model_info

# The streaming analyzers the speed target covers (probes other than k-NN fit a classifier
# in compute(), which is not part of the pass). Jaccard reads the data's masks.
STREAMING_ANALYSES = ("attention_distance", "attention_nmi", "fourier", "token_similarity",
                      "knn", "attention_jaccard")


def build_vit(name: str, img_size: int = 224, **kwargs) -> nn.Module:
    """A randomly initialised timm ViT without classifier head, in eval mode."""
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=0, img_size=img_size, **kwargs)
    return model.eval()


def synthetic_batches(count: int, batch_size: int, img_size: int, num_classes: int = 4,
                      seed: int = 0) -> list[dict]:
    """``count`` random images in batches shaped like the data loader's: image, index,
    labels {"class"}, mask (a random foreground rectangle per image)."""
    gen = torch.Generator().manual_seed(seed)
    batches = []
    for start in range(0, count, batch_size):
        size = min(batch_size, count - start)
        images = torch.randn(size, 3, img_size, img_size, generator=gen)
        corners = torch.randint(0, img_size // 2, (size, 2), generator=gen)
        masks = torch.zeros(size, img_size, img_size, dtype=torch.uint8)
        for i, (r, c) in enumerate(corners.tolist()):
            masks[i, r:r + img_size // 2, c:c + img_size // 2] = 1
        batches.append({
            "image": images,
            "index": torch.arange(start, start + size),
            "labels": {"class": torch.randint(0, num_classes, (size,), generator=gen)},
            "mask": masks,
        })
    return batches


def streaming_analyzers(model: nn.Module, names: Sequence[str] = STREAMING_ANALYSES,
                        params: Mapping[str, Mapping[str, Any]] | None = None) -> list:
    """Bound analyzers for every name in ``names`` that is registered (missing ones are
    reported by :func:`missing_analyses`), each with its ``params`` (by name) if given."""
    info = model_info(model)
    params = params or {}
    return [get_analyzer(name, **params.get(name, {})).bind(info, {"benchmark": True})
            for name in names if name in list_analyzers()]


def missing_analyses(names: Sequence[str] = STREAMING_ANALYSES) -> list[str]:
    """Names of the target's analyses that are not registered in this checkout."""
    return [name for name in names if name not in list_analyzers()]


def bare_pass(model: nn.Module, batches: Iterable[dict]) -> None:
    """timm's own forward (fused attention), nothing captured."""
    with torch.inference_mode():
        for batch in batches:
            model.forward_features(batch["image"])


def analysed_pass(model: nn.Module, analyzers: Sequence, batches: Iterable[dict]) -> None:
    """One capture pass feeding every analyzer's ``update`` (as the runner does)."""
    sites = set().union(*(a.sites() for a in analyzers))
    with torch.inference_mode(), capture(model, sites) as cap:
        for batch in batches:
            found = cap.run(batch["image"])
            full = {**batch, "sites": found}
            for analyzer in analyzers:
                analyzer.update(full)


def seconds(fn: Callable[[], None]) -> float:
    """Wall-clock seconds of one call (after synchronising a GPU, if one is in use)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def bench_parser(doc: str) -> argparse.ArgumentParser:
    """A script's parser: its docstring's first paragraph as the description, and each option's
    default in ``--help`` (every option has a help text for it to follow)."""
    return argparse.ArgumentParser(description=" ".join(doc.split("\n\n")[0].split()),
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)


def positive(text: str) -> int:
    """An argparse type: a whole number >= 1 (``--rounds 0`` would leave no time to take a median of)."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def interleaved_ratio(numerator: Callable[[], None], denominator: Callable[[], None],
                      rounds: int) -> tuple[float, list[float], list[float]]:
    """Median over ``rounds`` of numerator/denominator times, the two run back to back in
    alternating order (ABBA...) so drift and other load hit both alike. Returns
    (median ratio, numerator seconds, denominator seconds)."""
    num, den, ratios = [], [], []
    for r in range(rounds):
        if r % 2 == 0:
            d, n = seconds(denominator), seconds(numerator)
        else:
            n, d = seconds(numerator), seconds(denominator)
        num.append(n)
        den.append(d)
        ratios.append(n / d)
    return statistics.median(ratios), num, den


def environment(device: torch.device | None = None) -> str:
    """One line: torch / timm versions, threads, processor, and the GPU where ``device`` is one."""
    gpu = (f", GPU {torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
           if device is not None and device.type == "cuda" else "")
    return (f"torch {torch.__version__}, timm {timm.__version__}, threads "
            f"{torch.get_num_threads()} (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')}), "
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus{gpu}")

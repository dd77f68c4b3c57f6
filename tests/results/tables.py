"""Small hand-built results of every analysis table shape, for the results and plots tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from vitprobe.results import Result

DEPTH, HEADS, FREQS, RANKS = 3, 2, 3, 4
PROTOCOL = {"dataset": {"spec": "synthetic:8", "n": 8}, "image_size": 32,
            "checkpoint": {"sha256": "ab" * 32, "format": "timm"}, "batch_size": 4, "seed": 0}


def _frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows)


def make_results(seed: int = 0) -> dict[str, Result]:
    """One result per analysis, with the columns and metrics of the result contract."""
    rng = np.random.default_rng(seed)
    r = lambda: float(rng.random())  # noqa: E731
    per_head = lambda metric, scale: [  # noqa: E731
        {"metric": metric, "layer": l, "head": h, "value": scale * r(), "std": r(), "n": 8}
        for l in range(1, DEPTH + 1) for h in range(HEADS)
    ]
    nmi = per_head("nmi", 1.0) + [
        {"metric": "head_diversity_jsd", "layer": l, "head": pd.NA, "value": 0.6 * r(), "std": r(), "n": 8}
        for l in range(1, DEPTH + 1)
    ]
    fourier = [
        {"metric": "delta_log_amplitude", "layer": l, "frequency": 2 * k / 8, "value": -r() * k, "std": r(), "n": 8}
        for l in range(DEPTH + 1) for k in range(FREQS + 1)
    ]
    tokens = [{"metric": "token_cosine", "layer": l, "value": r(), "std": r(), "n": 8} for l in range(DEPTH + 1)]
    tokens += [
        {"metric": m, "layer": l, "rank": k, "value": -k - r(), "n": 8}
        for m in ("log_singular_value_image", "log_singular_value_token")
        for l in range(DEPTH + 1) for k in range(1, RANKS + 1)  # rank 1: the largest, as the analyzer counts
    ]
    probe = [
        {"metric": "linear_probe_top1", "layer": l, "label": lab, "value": 100 * r(), "n": 8}
        for l in range(DEPTH + 1) for lab in ("shape", "texture")
    ]
    knn = [{"metric": "knn_top1", "layer": l, "label": "shape", "value": 100 * r(), "n": 8} for l in range(DEPTH + 1)]
    jac = [{"metric": "jaccard", "head": h, "value": r(), "std": r(), "n": 4} for h in range(HEADS)]
    jac += [{"metric": m, "head": pd.NA, "value": r(), "std": r(), "n": 4} for m in ("jaccard_best_head", "jaccard_union")]
    size, grid = 32, 4
    artifacts = {
        "images": rng.integers(0, 255, (2, size, size, 3), dtype=np.uint8),
        "masks": rng.integers(0, 2, (2, size, size), dtype=np.uint8),
        "head_masks": rng.random((2, HEADS, grid, grid)) > 0.5,
        "head_attn": rng.random((2, HEADS, grid, grid)).astype(np.float32),
    }
    protocol = lambda **extra: {**PROTOCOL, **extra}  # noqa: E731
    return {
        "attention_distance": Result("attention_distance", _frame(per_head("attention_distance_px", 16.0)), protocol()),
        "attention_nmi": Result("attention_nmi", _frame(nmi), protocol()),
        "fourier": Result("fourier", _frame(fourier), protocol()),
        "token_similarity": Result("token_similarity", _frame(tokens), protocol()),
        "linear_probe": Result("linear_probe", _frame(probe), protocol(pooling="cls", final_norm=True)),
        "knn": Result("knn", _frame(knn), protocol(pooling="cls", k=20)),
        "attention_jaccard": Result("attention_jaccard", _frame(jac), protocol(threshold=0.6, layer=DEPTH), artifacts),
    }

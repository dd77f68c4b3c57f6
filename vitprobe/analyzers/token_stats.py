"""Analyses of the residual stream: Fourier profile, token similarity and covariance spectra."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from vitprobe.analyzers._registry import register_analyzer
from vitprobe.analyzers._split import heldout_mask
from vitprobe.analyzers.base import LayerAnalyzer, batch_index, tidy
from vitprobe.capture import ModelInfo
from vitprobe.errors import ConfigError, check_whole, is_real
from vitprobe.metrics import (
    covariance_from_sums,
    fourier_delta_log_amplitude,
    fourier_frequencies,
    log_singular_values,
    moment_sums,
    patch_tokens,
    token_cosine_similarity,
    token_covariance_log_spectrum,
)


@register_analyzer
class Fourier(LayerAnalyzer):
    """Relative log amplitude ``delta(f)`` of the token maps per (layer, frequency)."""

    name = "fourier"
    grid_bound = "patches"  # frequencies of the grid
    site_kind = "tokens"
    value_units = "delta_log_amplitude: natural log, relative to frequency 0; frequency: units of pi"
    metrics = ("delta_log_amplitude",)
    claim_axes = ("frequency",)

    def _bind(self, info: ModelInfo) -> None:
        super()._bind(info)
        h, w = info.grid
        if h != w:
            raise ConfigError(f"analysis 'fourier' needs a square patch grid, this model has {h}x{w};"
                              " analyse it at a square image size")
        self.frequencies_ = fourier_frequencies(h).double().numpy()

    def _moment_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"delta_log_amplitude": (len(self.layers_), len(self.frequencies_))}

    def _update(self, batch: Mapping[str, Any]) -> None:
        info = self.info_
        values = [fourier_delta_log_amplitude(t, info.num_prefix_tokens, info.grid)
                  for t in self._inputs(batch)]
        self._add_moments("delta_log_amplitude", torch.stack(values, dim=1))

    def _table(self) -> pd.DataFrame:
        axes = {"layer": self.layers_, "frequency": self.frequencies_}
        return tidy("delta_log_amplitude", axes, *self._moments("delta_log_amplitude"))


@register_analyzer
class TokenSimilarity(LayerAnalyzer):
    """Mean pairwise cosine of an image's patch tokens per layer, and log singular value
    spectra per (layer, rank): image level (covariance over images of the mean-pooled patch
    tokens, streamed) and token level (each image's token covariance, averaged over images).

    The token-level spectrum costs an eigendecomposition per image and layer, most of what this
    analysis costs on a CPU. With ``spectrum_fraction`` < 1 it is averaged over the images
    whose index hashes below that fraction (``spectrum_seed`` picks another sample; the pick
    does not depend on batch order or sharding, nor coincide with the probes' held-out split);
    the table's ``n`` counts them and the other metrics still see every image."""

    name = "token_similarity"
    grid_bound = "patches"  # spectra ranked over them
    site_kind = "tokens"
    value_units = "token_cosine: cosine; log_singular_value_*: natural log"
    metrics = ("token_cosine", "log_singular_value_image", "log_singular_value_token")
    claim_axes = ("rank",)
    outcome_keys = ("spectrum_images",)
    # only the token-level spectrum is averaged over a sample; cosine and image spectrum see every image
    keys_of_metrics = {key: ("log_singular_value_token",) for key in ("spectrum_fraction", "spectrum_images")}
    # Mixed into spectrum_seed so that, at equal seeds and fractions, the spectrum's sample is
    # not the probes' held-out split (both hash the index).
    _SPECTRUM_SALT = 0x5EC7

    def __init__(self, layers: Sequence[int] | None = None, spectrum_fraction: float = 1.0,
                 spectrum_seed: int = 0) -> None:
        super().__init__(layers)
        if not (is_real(spectrum_fraction) and 0.0 < spectrum_fraction <= 1.0):
            raise ConfigError(f"analysis 'token_similarity': spectrum_fraction={spectrum_fraction!r} must lie "
                              "in (0, 1]: the share of the images whose token spectrum is computed")
        self.spectrum_fraction = spectrum_fraction
        self.spectrum_seed = check_whole(spectrum_seed, "analysis 'token_similarity': spectrum_seed", minimum=0)

    def _learned_protocol(self) -> dict[str, Any]:
        over = ("every image" if self.spectrum_fraction == 1.0 else
                "the images with hash(index, spectrum_seed) < spectrum_fraction")
        protocol = {**super()._learned_protocol(),
                    "token_cosine": "mean over off-diagonal pairs of an image's patch tokens, then over images",
                    "spectrum_image": "log singular values of the covariance over images of mean-pooled patch tokens",
                    "spectrum_token": f"per rank, the mean over {over} of the log singular values of each "
                                      "image's patch-token covariance (values floored at 1e-12)",
                    "spectrum_ranks": "NaN past the covariance's rank: images - 1 (image level), patches - 1 "
                                      "(token level), at most the width"}
        if self.spectrum_fraction < 1.0:
            protocol["spectrum_images"] = int(self._sums["log_singular_value_token.count"])
        return protocol

    def _spectrum_images(self, batch: Mapping[str, Any]) -> torch.Tensor | None:
        """The rows of the batch whose token spectrum is computed (None: all of them)."""
        if self.spectrum_fraction == 1.0:
            return None
        index = batch_index(batch, self.name, " (spectrum_fraction < 1 picks images by it; or use 1)")
        return heldout_mask(index, self.spectrum_fraction, self.spectrum_seed ^ self._SPECTRUM_SALT)

    def _moment_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"token_cosine": (len(self.layers_),),
                "log_singular_value_token": (len(self.layers_), self.info_.embed_dim)}

    def _sum_shapes(self) -> dict[str, tuple[int, ...]]:
        layers, width = len(self.layers_), self.info_.embed_dim
        return {"pooled.sum": (layers, width), "pooled.outer": (layers, width, width),
                "pooled.count": ()}

    def _update(self, batch: Mapping[str, Any]) -> None:
        prefix = self.info_.num_prefix_tokens
        tokens = self._inputs(batch)
        self._add_moments("token_cosine",
                          torch.stack([token_cosine_similarity(t, prefix) for t in tokens], dim=1))
        chosen = self._spectrum_images(batch)
        if chosen is None or chosen.any():
            picked = tokens if chosen is None else [t[chosen.to(t.device)] for t in tokens]
            self._add_moments("log_singular_value_token", torch.stack(
                [token_covariance_log_spectrum(t, prefix) for t in picked], dim=1))
        for i, t in enumerate(tokens):
            total, outer = moment_sums(patch_tokens(t, prefix).mean(dim=1))
            self._sums["pooled.sum"][i] += total.cpu()
            self._sums["pooled.outer"][i] += outer.cpu()
        self._sums["pooled.count"] += tokens[0].shape[0]

    def _ranks(self) -> tuple[int, int]:
        """The highest rank with a singular value: ``min(images - 1, C)`` for the covariance
        over images, ``min(patches - 1, C)`` for an image's token covariance (centring takes one)."""
        width, patches = self.info_.embed_dim, self.info_.grid[0] * self.info_.grid[1]
        return min(max(int(self._sums["pooled.count"]) - 1, 0), width), min(patches - 1, width)

    def _table(self) -> pd.DataFrame:
        ranks = np.arange(1, self.info_.embed_dim + 1)
        count = int(self._sums["pooled.count"])
        image_spectrum = torch.stack([
            log_singular_values(covariance_from_sums(self._sums["pooled.sum"][i],
                                                     self._sums["pooled.outer"][i], count))
            if count > 1 else torch.full((len(ranks),), float("nan"), dtype=torch.float64)
            for i in range(len(self.layers_))]).numpy()
        token_mean, token_std, token_n = self._moments("log_singular_value_token")
        image_rank, token_rank = self._ranks()
        for values in (image_spectrum[:, image_rank:], token_mean[:, token_rank:], token_std[:, token_rank:]):
            values[...] = np.nan  # past the matrix's rank: no singular value, not a small one
        return pd.concat([
            tidy("token_cosine", {"layer": self.layers_}, *self._moments("token_cosine")),
            tidy("log_singular_value_image", {"layer": self.layers_, "rank": ranks},
                 image_spectrum, None, count),
            tidy("log_singular_value_token", {"layer": self.layers_, "rank": ranks}, token_mean, token_std, token_n),
        ], ignore_index=True)
